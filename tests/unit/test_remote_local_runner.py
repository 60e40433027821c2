"""Where local jobs work: a root the job account can pass through, that nobody else can swap."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ancora.config import Settings
from ancora.remote.jobs import InvalidJob
from ancora.remote.runners.local import work_root


def test_the_work_root_is_created_passable_even_under_a_private_umask(tmp_path: Path) -> None:
    """Ancora's processes run with umask 077; mkdir alone would make the root 0700 and lock jobs out."""
    settings = Settings(state_dir=tmp_path / "state", remote_local_work_root=tmp_path / "jobs")
    previous = os.umask(0o077)
    try:
        root = work_root(settings)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(root.stat().st_mode) == 0o711


def test_a_work_root_inside_the_state_folder_or_open_to_others_is_refused(tmp_path: Path) -> None:
    inside = Settings(state_dir=tmp_path / "state", remote_local_work_root=tmp_path / "state" / "jobs")
    with pytest.raises(InvalidJob, match="outside the state folder"):
        work_root(inside)
    shared = tmp_path / "shared-jobs"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(InvalidJob, match="nobody else can write"):
        work_root(Settings(state_dir=tmp_path / "state", remote_local_work_root=shared))
    link = tmp_path / "link-jobs"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(InvalidJob, match="must be a folder"):
        work_root(Settings(state_dir=tmp_path / "state", remote_local_work_root=link))
