"""The inference API: a thin FastAPI face over ``ancora.serving``."""
