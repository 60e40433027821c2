"""Observability of what is served: the prediction log, drift, alerts, health over time, first run."""
