"""One router per concern: predictions, models and reload, health, metrics."""
