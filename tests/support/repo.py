"""The checkout the tests run from: its examples, docker files and docs are not part of the package."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
