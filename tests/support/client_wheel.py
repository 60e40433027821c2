"""The client as a researcher on a login node installs it: ancora-client's wheel in a fresh Python 3.9
virtualenv, with requests and nothing of Ancora.

The wheel is built from the checkout (``uv build --package ancora-client --wheel``) and installed with
its dependencies from uv's cache or index. The virtualenv's python sees neither ``src/`` nor
``client/src/``: a script it runs imports the client from the wheel, on the oldest Python the
distribution promises.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
CLIENT_PYTHON = (3, 9)
"""requires-python of client/pyproject.toml: the oldest Python the client must run on."""
CLIENT_DISTRIBUTIONS = {"ancora-client", "requests", "urllib3", "idna", "certifi", "charset-normalizer"}
"""What installing the wheel may bring: the client, requests and requests' own dependencies."""
INHERITED_PYTHON_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
"""The test process's Python settings, which would let the virtualenv see the checkout's environment."""


def is_client_python(executable: str) -> bool:
    """True when ``executable`` runs and is Python 3.9 (pyenv shims exist for versions not selected)."""
    try:
        answer = subprocess.run(
            [executable, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return False
    return answer.returncode == 0 and answer.stdout.split() == [str(part) for part in CLIENT_PYTHON]


def find_client_python() -> str:
    """A Python 3.9 interpreter on PATH or in pyenv; else the version for uv to find or download."""
    wanted = ".".join(str(part) for part in CLIENT_PYTHON)
    on_path = shutil.which(f"python{wanted}")
    candidates = [on_path] if on_path else []
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{wanted}.*/bin/python{wanted}"))
    candidates += [str(path) for path in pyenv]
    return next((candidate for candidate in candidates if is_client_python(candidate)), wanted)


def build_client_wheel(out_dir: Path) -> Path:
    subprocess.run(
        ["uv", "build", "--package", "ancora-client", "--wheel", "--out-dir", str(out_dir)],
        cwd=CHECKOUT,
        check=True,
        capture_output=True,
    )
    (wheel,) = out_dir.glob("ancora_client-*.whl")
    return wheel


def client_virtualenv(folder: Path) -> Path:
    """A new Python 3.9 virtualenv in ``folder`` with the client's wheel installed; its python."""
    wheel = build_client_wheel(folder / "dist")
    venv = folder / "venv"
    environment = clean_environment()
    subprocess.run(
        ["uv", "venv", "--quiet", "--python", find_client_python(), str(venv)],
        env=environment,
        check=True,
        capture_output=True,
    )
    python = venv / "bin" / "python"
    subprocess.run(
        ["uv", "pip", "install", "--quiet", "--python", str(python), str(wheel)],
        env=environment,
        check=True,
        capture_output=True,
    )
    if not is_client_python(str(python)):
        raise RuntimeError(f"{python} is not Python {CLIENT_PYTHON}")
    return python


def clean_environment() -> dict[str, str]:
    """This process's environment without its Python settings: what a login node's shell would have."""
    return {key: value for key, value in os.environ.items() if key not in INHERITED_PYTHON_VARIABLES}


def installed_distributions(python: Path) -> set[str]:
    """Names of the distributions in the virtualenv of ``python`` (normalised: lower case, dashes)."""
    probe = (
        "import importlib.metadata as m; "
        "print(*sorted({d.metadata['Name'].lower().replace('_', '-') for d in m.distributions()}))"
    )
    answer = subprocess.run(
        [str(python), "-I", "-c", probe], capture_output=True, text=True, check=True, env=clean_environment()
    )
    return set(answer.stdout.split())
