"""``biganchoring_ml_module.task_management``, as existing scripts import it."""

from ancora_client.task_management import TaskHandler

__all__ = ["TaskHandler"]
