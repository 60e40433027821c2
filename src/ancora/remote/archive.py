"""Unpacking submitted zips without trusting them.

A zip is attacker-controlled input: entry names can climb out of the target folder (``../``,
absolute paths), entries can be symlinks or collide with each other, and a few kilobytes can inflate
to gigabytes. Every entry is checked before anything is written, and sizes are counted again while
writing because the sizes in the headers are claims, not facts.

The inflation ratio is checked twice: for the whole archive (unpacked bytes over the zip file's
size), so that many small entries cannot add up to a bomb, and for each large entry, so that one
huge entry cannot hide behind a large incompressible one.
"""

from __future__ import annotations

import errno
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CHUNK = 1 << 20
RATIO_CHECK_MIN_BYTES = 1 << 20
"""An archive (or an entry) that unpacks to less than this is no threat however well it compresses
(a small file of zeros); the ratio guards look at what is larger."""
REFUSED_OS_ERRORS = frozenset({errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.EINVAL})
"""What a hostile or broken archive can make the file system answer: the upload's fault, not ours."""


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


def _check_names(entries: list[zipfile.ZipInfo]) -> None:
    """Two entries may not name the same path, and a file may not stand where a folder must be."""
    files: set[PurePosixPath] = set()
    folders: set[PurePosixPath] = set()
    for info in entries:
        path = PurePosixPath(*[part for part in _safe_member_path(info.filename).parts if part != "."])
        if path == PurePosixPath():
            continue
        parents = set(path.parents) - {PurePosixPath()}
        if info.is_dir():
            if path in files:
                raise UnsafeArchive(f"entry {info.filename!r} is both a file and a folder")
            folders.add(path)
        else:
            if path in files:
                raise UnsafeArchive(f"entry {info.filename!r} appears twice")
            if path in folders:
                raise UnsafeArchive(f"entry {info.filename!r} is both a file and a folder")
            files.add(path)
        if parents & files:
            raise UnsafeArchive(f"entry {info.filename!r} lies under a file of the same archive")
        folders |= parents


def check_zip(archive: zipfile.ZipFile, limits: ZipLimits, packed_bytes: int) -> list[zipfile.ZipInfo]:
    """Every entry of the archive, or UnsafeArchive naming the first problem."""
    entries = archive.infolist()
    if len(entries) > limits.max_entries:
        raise UnsafeArchive(f"{len(entries)} entries; at most {limits.max_entries} are accepted")
    _check_names(entries)
    total = 0
    for info in entries:
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
    ratio = total / max(packed_bytes, 1)
    if total > RATIO_CHECK_MIN_BYTES and ratio > limits.max_ratio:
        raise UnsafeArchive(
            f"the archive inflates {ratio:.0f}x ({packed_bytes} bytes to {total}); at most "
            f"{limits.max_ratio:g}x is accepted (zip bomb guard)"
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
            entries = check_zip(archive, limits, source.stat().st_size)
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
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as problem:
        shutil.rmtree(target, ignore_errors=True)
        raise UnsafeArchive(f"{source.name} is not a readable zip file: {problem}") from problem
    except OSError as problem:
        shutil.rmtree(target, ignore_errors=True)
        if problem.errno in REFUSED_OS_ERRORS:
            raise UnsafeArchive(f"{source.name} cannot be unpacked: {problem.strerror}") from problem
        raise
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
