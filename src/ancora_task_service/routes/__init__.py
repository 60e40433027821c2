"""One router per concern: login, tasks, health."""
