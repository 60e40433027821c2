"""Serving core: the served model from the registry, hot reload, micro-batching, row conversion.

The inference API is a thin FastAPI face over this package; scheduled batch scoring reuses it.
"""
