"""The container image's Python requirements, derived from ``uv.lock``.

The image installs scikit-learn and what it needs, nothing else, at exactly the versions (and hashes)
the project locks, so the model a native run trains and the model the image serves use one library
version: a pickle is only safe to load with the scikit-learn that wrote it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ancora.locations import require_checkout

IMAGE_ROOTS = ("scikit-learn",)
PURPOSE = "Deriving the SageMaker image's requirements from uv.lock"


def requirements_path() -> Path:
    """``sagemaker/requirements.txt`` of the checkout (the image is built from one)."""
    return require_checkout(PURPOSE) / "sagemaker" / "requirements.txt"


def lock_path() -> Path:
    return require_checkout(PURPOSE) / "uv.lock"


def _closure(packages: dict[str, dict[str, Any]], roots: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """Every package reachable from ``roots``, with the marker of the edge that first reached it."""
    seen: dict[str, str | None] = {}
    pending: list[tuple[str, str | None]] = [(root, None) for root in roots]
    while pending:
        name, marker = pending.pop()
        if name in seen:
            continue
        seen[name] = marker
        for dependency in packages[name].get("dependencies", []):
            pending.append((dependency["name"], dependency.get("marker")))
    return sorted(seen.items())


def image_requirements(lock: Path | None = None, roots: tuple[str, ...] = IMAGE_ROOTS) -> str:
    """``requirements.txt`` text for ``pip install --require-hashes``: pins and hashes from the lock."""
    locked = tomllib.loads((lock or lock_path()).read_text())
    packages = {package["name"]: package for package in locked["package"]}
    lines = [
        "# Generated from uv.lock by `ancora sagemaker requirements`: scikit-learn and its dependencies,",
        "# pinned with hashes. Regenerate after `uv lock` changes them; a test checks it matches.",
    ]
    for name, marker in _closure(packages, roots):
        package = packages[name]
        hashes = [wheel["hash"] for wheel in package.get("wheels", [])]
        if "sdist" in package:
            hashes.append(package["sdist"]["hash"])
        requirement = f"{name}=={package['version']}" + (f" ; {marker}" if marker else "")
        lines.append(" \\\n".join([requirement, *(f"    --hash={digest}" for digest in hashes)]))
    return "\n".join(lines) + "\n"


def write_image_requirements(path: Path | None = None) -> Path:
    target = path or requirements_path()
    target.write_text(image_requirements())
    return target
