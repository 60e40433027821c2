"""One router per concern: ``pipelines`` (the orchestrator's API) and ``health``."""
