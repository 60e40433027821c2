"""Compatibility package: scripts written for ``biganchoring_ml_module`` (seed 000) import it unchanged;
``ancora_client`` serves them."""

from ancora_client import Server_connection, Submitter, TaskHandler

__all__ = ["Server_connection", "Submitter", "TaskHandler"]
