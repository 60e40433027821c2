"""Helpers shared by the test suites: real services started as subprocesses."""
