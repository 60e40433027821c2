"""The client library of the task service, API-compatible with ``biganchoring_ml_module``.

``from ancora.client import Submitter, TaskHandler, Server_connection``; the same names import from
``biganchoring_ml_module``. Settings: ANCORA_TASK_SERVICE_URL, ANCORA_TASK_SERVICE_USERNAME,
ANCORA_TASK_SERVICE_PASSWORD.
"""

from ancora.client.connection import Server_connection
from ancora.client.submitter import Submitter
from ancora.client.task_management import TaskHandler

__all__ = ["Server_connection", "Submitter", "TaskHandler"]
