"""``biganchoring_ml_module.submitter``, as existing scripts import it."""

from ancora_client.connection import Server_connection
from ancora_client.submitter import Submitter

__all__ = ["Server_connection", "Submitter"]
