"""What the HTTP worker processes of one ``ancora serve`` share: a folder, made by the parent process
before it starts them, holding the metric files of every worker and the reload signal.

One process answers HTTP on one core (the GIL); ``ANCORA_SERVING_HTTP_WORKERS`` runs several on the
same port, as uvicorn's ``--workers`` does. Each worker loads and watches the model on its own; a
``POST /reload`` answered by one of them asks the others to check the alias too, through the signal
file, which every worker looks at a few times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import multiprocess

from ancora.stack.processes import is_running

SHARED_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's own variable, read when it is imported: it must name the folder before a worker
starts, and it is what tells a worker that it has siblings."""
FOLDER_PREFIX = "ancora-serve-workers-"
"""Followed by the process id of the ``ancora serve`` that made the folder."""
RELOAD_SIGNAL = "reload-requested"
SIGNAL_POLL_SECONDS = 0.25


def shared_folder() -> Path | None:
    """The folder this worker shares with its siblings; None for a single process."""
    folder = os.environ.get(SHARED_DIR_VARIABLE)
    return Path(folder) if folder else None


@contextlib.contextmanager
def shared_dir() -> Iterator[Path]:
    """A fresh folder for the workers, named in the environment they inherit; removed afterwards, so a
    restart never adds up the counts of a previous run. Folders left by a server that was killed
    outright (SIGKILL, out of memory) are removed first."""
    remove_orphaned_folders(Path(tempfile.gettempdir()))
    folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-"))
    previous = os.environ.get(SHARED_DIR_VARIABLE)
    os.environ[SHARED_DIR_VARIABLE] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(SHARED_DIR_VARIABLE, None)
        else:
            os.environ[SHARED_DIR_VARIABLE] = previous
        shutil.rmtree(folder, ignore_errors=True)


def remove_orphaned_folders(parent: Path) -> list[Path]:
    """Remove this user's worker folders whose server process is gone; returns them."""
    removed = []
    for folder in parent.glob(f"{FOLDER_PREFIX}*"):
        owner = folder.name.removeprefix(FOLDER_PREFIX).split("-", 1)[0]
        try:
            mine = folder.is_dir() and folder.stat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and owner.isdigit() and not is_running(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def forget_dead_workers(folder: Path) -> list[int]:
    """Drop the gauges of workers that are gone (uvicorn starts a new one when a worker dies), so they
    stop showing among the live ones; their counts stay in the totals. Returns their process ids."""
    pids = {path.stem.rsplit("_", 1)[-1] for path in folder.glob("gauge_live*_*.db")}
    dead = {int(pid) for pid in pids if pid.isdigit() and not is_running(int(pid))}
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]
    return sorted(dead)


class ReloadSignal:
    """A file whose content changes when a worker is asked to reload; the others notice and check."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / RELOAD_SIGNAL
        self._seen = self._read()

    def send(self) -> None:
        """Tell the siblings to check the alias now (this worker checks on its own)."""
        token = f"{os.getpid()}-{os.urandom(8).hex()}"
        staged = self.path.with_name(f".{RELOAD_SIGNAL}-{os.getpid()}")
        staged.write_text(token)
        staged.replace(self.path)
        self._seen = token

    async def follow(self, on_signal: Callable[[], None]) -> None:
        """Call ``on_signal`` each time another worker sends; runs until cancelled."""
        while True:
            await asyncio.sleep(SIGNAL_POLL_SECONDS)
            token = self._read()
            if token != self._seen:
                self._seen = token
                on_signal()

    def _read(self) -> str:
        try:
            return self.path.read_text()
        except OSError:
            return ""
