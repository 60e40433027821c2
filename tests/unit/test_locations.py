"""Shipped files are found from the installed packages, faces are loaded only by the command that
starts them, and a missing face names the extra to install."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import typer

from ancora import locations
from ancora.cli.faces import load_face
from tests.support.repo import REPO_ROOT


def test_the_shipped_data_sets_are_package_resources() -> None:
    for relative in (locations.COVERTYPE_CSV, locations.PULSAR_CSV):
        path = locations.shipped_dataset(relative)
        assert path.is_file() and path.is_relative_to(locations.PACKAGE_FOLDER / "datasets"), path


def test_the_dags_plugins_and_ui_script_are_files_of_their_faces() -> None:
    assert (locations.dags_folder() / "covertype_collect.py").is_file()
    assert (locations.plugins_folder() / "ancora_remote" / "operators.py").is_file()
    assert locations.ui_script().name == "app.py" and locations.ui_script().parent.name == "ancora_ui"


def test_a_face_that_is_not_installed_names_its_extra() -> None:
    with pytest.raises(locations.FaceNotInstalled, match=r"install ancora\[serve\]"):
        locations.face_folder("ancora_no_such_face", "serve")


def test_a_command_whose_face_is_missing_exits_with_the_extra(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as stopped:
        load_face("ancora_no_such_face.app", "tasks")
    assert stopped.value.exit_code == 2
    message = capsys.readouterr().err
    assert "ancora_no_such_face" in message and "install ancora[tasks]" in message


def test_the_cli_imports_no_face_streamlit_fastapi_or_airflow() -> None:
    """lint-imports sees static imports; this sees what `ancora --help` really loads."""
    probe = (
        "import sys, ancora.cli\n"
        "heavy = ('fastapi', 'streamlit', 'airflow', 'uvicorn')\n"
        "tops = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(m for m in tops if m.startswith('ancora_') or m in heavy))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_this_checkout_is_found_and_its_commit_is_in_the_code_version() -> None:
    assert locations.checkout_root() == REPO_ROOT
    assert locations.require_checkout("this test") == REPO_ROOT
    assert locations.code_version("release-7") == "release-7"
    version = locations.code_version()
    assert version.startswith(f"ancora-{locations.package_version()}")
    if (REPO_ROOT / ".git").exists():
        assert re.fullmatch(r"ancora-[^+]+\+[0-9a-f]{12}(\.dirty)?", version), version
