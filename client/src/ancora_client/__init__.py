"""The client library of Ancora's task service, API-compatible with ``biganchoring_ml_module``.

``from ancora_client import Submitter, TaskHandler, Server_connection``; the same names import from
``biganchoring_ml_module``. Configuration: ANCORA_TASK_SERVICE_URL, ANCORA_TASK_SERVICE_USERNAME and
ANCORA_TASK_SERVICE_PASSWORD (``ancora_client.environment``). Needs only ``requests``, Python >= 3.9.
"""

from ancora_client.connection import Server_connection
from ancora_client.submitter import Submitter
from ancora_client.task_management import TaskHandler

__all__ = ["Server_connection", "Submitter", "TaskHandler"]
