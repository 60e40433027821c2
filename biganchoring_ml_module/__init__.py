"""Compatibility package: existing scripts import ``biganchoring_ml_module``; Ancora's client serves them."""

from ancora.client import Server_connection, Submitter, TaskHandler

__all__ = ["Server_connection", "Submitter", "TaskHandler"]
