"""Unpacking submitted zips without trusting them.

A zip is attacker-controlled input: entry names can climb out of the target folder (``../``,
absolute paths), entries can be symlinks, and a few kilobytes can inflate to gigabytes. Every entry
is checked before anything is written, and sizes are counted again while writing because the
sizes in the headers are claims, not facts.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CHUNK = 1 << 20
RATIO_CHECK_MIN_BYTES = 1 << 20
"""Tiny entries compress absurdly well (a file of zeros) without being a threat; the ratio guard
only looks at entries above this size, the total size guard covers the rest."""


class UnsafeArchive(ValueError):
    """The upload is refused; the message says why and is shown to the submitter."""


@dataclass(frozen=True)
class ZipLimits:
    max_unpacked_bytes: int
    max_ratio: float
    max_entries: int


@dataclass(frozen=True)
class Unpacked:
    files: int
    bytes: int


def _safe_member_path(name: str) -> PurePosixPath:
    if "\x00" in name:
        raise UnsafeArchive(f"entry name {name!r} contains a NUL byte")
    if "\\" in name:
        raise UnsafeArchive(f"entry {name!r} uses backslashes; zip paths use '/'")
    path = PurePosixPath(name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"entry {name!r} has an absolute path")
    if ".." in path.parts:
        raise UnsafeArchive(f"entry {name!r} leaves the task folder (zip slip)")
    return path


def check_zip(archive: zipfile.ZipFile, limits: ZipLimits) -> list[zipfile.ZipInfo]:
    """Every entry of the archive, or UnsafeArchive naming the first problem."""
    entries = archive.infolist()
    if len(entries) > limits.max_entries:
        raise UnsafeArchive(f"{len(entries)} entries; at most {limits.max_entries} are accepted")
    total = 0
    for info in entries:
        _safe_member_path(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchive(f"entry {info.filename!r} is a symbolic link")
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchive(f"entry {info.filename!r} is not a regular file or folder")
        if info.flag_bits & 0x1:
            raise UnsafeArchive(f"entry {info.filename!r} is encrypted")
        total += info.file_size
        if total > limits.max_unpacked_bytes:
            raise UnsafeArchive(f"unpacks to more than {limits.max_unpacked_bytes} bytes (zip bomb guard)")
        if info.file_size > RATIO_CHECK_MIN_BYTES:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise UnsafeArchive(
                    f"entry {info.filename!r} inflates {ratio:.0f}x; at most {limits.max_ratio:g}x "
                    "is accepted (zip bomb guard)"
                )
    return entries


def unpack_zip(source: Path, target: Path, limits: ZipLimits) -> Unpacked:
    """Unpack ``source`` into ``target`` (created, must not exist); on any refusal nothing is left."""
    if not zipfile.is_zipfile(source):
        raise UnsafeArchive(f"{source.name} is not a zip file")
    target.mkdir(parents=True)
    root = target.resolve()
    try:
        with zipfile.ZipFile(source) as archive:
            entries = check_zip(archive, limits)
            written = 0
            files = 0
            for info in entries:
                destination = (root / _safe_member_path(info.filename)).resolve()
                if destination != root and root not in destination.parents:
                    raise UnsafeArchive(f"entry {info.filename!r} leaves the task folder")
                if info.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                written += _copy_bounded(archive, info, destination, limits.max_unpacked_bytes - written)
                files += 1
    except zipfile.BadZipFile as problem:
        shutil.rmtree(target, ignore_errors=True)
        raise UnsafeArchive(f"{source.name} is not a readable zip file: {problem}") from problem
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return Unpacked(files=files, bytes=written)


def _copy_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path, budget: int) -> int:
    """Copy one entry, counting real bytes: headers may lie about the size."""
    copied = 0
    with archive.open(info) as source, destination.open("xb") as sink:
        while chunk := source.read(CHUNK):
            copied += len(chunk)
            if copied > info.file_size or copied > budget:
                raise UnsafeArchive(f"entry {info.filename!r} inflates beyond its declared size")
            sink.write(chunk)
    return copied
