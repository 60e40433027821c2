"""`python -m ancora` runs the CLI, for environments where the console script is not on PATH."""

from ancora.cli import app

app()
