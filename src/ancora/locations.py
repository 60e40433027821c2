"""Where Ancora's shipped files are: found from the installed packages, never from a source checkout.

An installed wheel has no repository around it, so the shipped data sets are package resources of
``ancora``, and the DAGs, the Airflow plugins and the Streamlit script are files of the faces
``ancora_airflow`` and ``ancora_ui``. The faces are located with ``importlib.util.find_spec``, which
reads no module of theirs: the domain package stays free of their imports (Streamlit, Airflow), and a
role installed without a face gets a message that names the extra to install.

pip and uv install wheels unpacked, so every resource here is a real file on disk.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from importlib import resources
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as distribution_version
from importlib.util import find_spec
from pathlib import Path

import ancora

PACKAGE_FOLDER = Path(ancora.__file__).resolve().parent
"""The installed ``ancora`` package (``src/ancora`` in an editable checkout)."""

COVERTYPE_CSV = "covertype/covertype.csv"
PULSAR_CSV = "pulsar/HTRU_2.csv"


class FaceNotInstalled(RuntimeError):
    """A service's package is not installed in this environment (its role's extra was left out)."""


def shipped_dataset(relative: str) -> Path:
    """A data set shipped inside the package (``ancora/datasets/<relative>``)."""
    return Path(str(resources.files("ancora").joinpath("datasets", *relative.split("/"))))


def face_folder(package: str, extra: str) -> Path:
    """The folder of an installed face package, found without importing it."""
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FaceNotInstalled(f"{package} is not installed: install ancora[{extra}]")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def dags_folder() -> Path:
    """Airflow's DAG folder: the DAG files shipped in ``ancora_airflow``."""
    return face_folder("ancora_airflow", "airflow") / "dags"


def plugins_folder() -> Path:
    """Airflow's plugins folder (the remote-job operator and trigger), shipped in ``ancora_airflow``."""
    return face_folder("ancora_airflow", "airflow") / "plugins"


def ui_script() -> Path:
    """The Streamlit script that ``streamlit run`` starts."""
    return face_folder("ancora_ui", "ui") / "app.py"


def checkout_root() -> Path | None:
    """The source checkout Ancora runs from (an editable install), or None for an installed wheel.

    Only build-from-source tools (the SageMaker image, the settings docs) and the code version's git
    commit need it."""
    root = PACKAGE_FOLDER.parents[1]
    if PACKAGE_FOLDER.parent.name == "src" and (root / "pyproject.toml").is_file():
        return root
    return None


def require_checkout(purpose: str) -> Path:
    """The checkout, or an error saying that ``purpose`` works only from one."""
    root = checkout_root()
    if root is None:
        raise FileNotFoundError(
            f"{purpose} needs a source checkout of Ancora (an editable install, `uv sync` in the "
            f"repository); this ancora is installed from a wheel at {PACKAGE_FOLDER}"
        )
    return root


def package_version() -> str:
    try:
        return distribution_version("ancora")
    except PackageNotFoundError:
        return "0+unknown"


def checkout_commit(root: Path) -> str | None:
    """The checkout's git commit (12 hex digits, ``.dirty`` when tracked files changed), or None
    when the folder is not a git work tree or git is missing."""
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, check=True, timeout=5,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=5,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}.dirty" if dirty else commit


@lru_cache
def code_version(configured: str | None = None) -> str:
    """ANCORA_CODE_VERSION when set, else ``ancora-<package version>``, plus ``+<git commit>`` when
    running from a git checkout (an installed wheel has no repository to ask)."""
    if configured:
        return configured
    version = f"ancora-{package_version()}"
    root = checkout_root()
    commit = checkout_commit(root) if root is not None else None
    return f"{version}+{commit}" if commit else version
