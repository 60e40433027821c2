"""Files only the stack's own user may read: the state folder, databases, logs, keys and passwords.

Two layers. Every ``ancora`` process (the launcher, so every service it starts, and each service
entry point) runs with ``umask 077``: whatever it or a library creates (SQLite databases, logs,
Airflow's and MLflow's files) is 0600, folders 0700. Secret files do not rely on that: they are
created with mode 0600 by ``os.open`` (never written first and restricted after, which leaves a
moment in which another user can open them) and put in place by a rename or a hard link, so a
reader never sees half a key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def restrict_umask() -> None:
    """Files and folders this process and its children create are for their owner only."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """``path`` as a folder only its owner can enter: created 0700, or narrowed to 0700 when an older
    version left it open (0755), which closes everything below it whatever the inner modes."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(PRIVATE_DIR_MODE)
    return path


def write_private_file(path: Path, text: str) -> None:
    """Create or replace ``path`` with ``text``, mode 0600 from its first byte, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    partial = _private_temporary(path, text)
    try:
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def read_or_create_private_file(path: Path, make: Callable[[], str]) -> str:
    """The content of ``path``; when it does not exist, ``make()`` written there first (mode 0600).

    Two processes racing on a first start agree: the file is linked into place only if absent, and
    the loser reads the winner's value.
    """
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    partial = _private_temporary(path, make())
    try:
        os.link(partial, path)
    except FileExistsError:
        pass
    finally:
        partial.unlink(missing_ok=True)
    return path.read_text().strip()


def _private_temporary(path: Path, text: str) -> Path:
    partial = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return partial
