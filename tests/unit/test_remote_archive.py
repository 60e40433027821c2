"""Submitted zips: every hostile shape is refused with a reason and leaves nothing behind."""

from __future__ import annotations

import stat
import warnings
import zipfile
from pathlib import Path

import pytest

from ancora.remote.archive import UnsafeArchive, ZipLimits, unpack_zip

LIMITS = ZipLimits(max_unpacked_bytes=50 * 1024 * 1024, max_ratio=100, max_entries=100)


def make_zip(path: Path, entries: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def refused(tmp_path: Path, source: Path, limits: ZipLimits = LIMITS) -> str:
    target = tmp_path / "task" / "work" / "dataset"
    with pytest.raises(UnsafeArchive) as refusal:
        unpack_zip(source, target, limits)
    assert not target.exists(), "a refused zip must leave nothing behind"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".zip"] == []
    return str(refusal.value)


def test_a_plain_zip_unpacks_with_its_folders(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "ok.zip", {"project/MLproject": b"name: x", "data/a.csv": b"1,2\n"})
    result = unpack_zip(source, tmp_path / "out", LIMITS)
    assert (result.files, result.bytes) == (2, len(b"name: x") + len(b"1,2\n"))
    assert (tmp_path / "out" / "project" / "MLproject").read_bytes() == b"name: x"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../escape.txt", "zip slip"),
        ("project/../../escape.txt", "zip slip"),
        ("/etc/cron.d/evil", "absolute"),
        ("C:/windows/evil", "absolute"),
        ("dir\\..\\evil", "backslash"),
    ],
)
def test_entries_leaving_the_folder_are_refused(tmp_path: Path, name: str, reason: str) -> None:
    source = make_zip(tmp_path / "bad.zip", {"fine.txt": b"x", name: b"owned"})
    assert reason in refused(tmp_path, source)
    assert not (tmp_path / "escape.txt").exists()


def test_symlinks_are_refused(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "link.zip", {"fine.txt": b"x"}, symlink="passwd")
    assert "symbolic link" in refused(tmp_path, source)


def test_zip_bombs_are_refused_by_ratio_and_by_total_size(tmp_path: Path) -> None:
    bomb = make_zip(tmp_path / "bomb.zip", {"zeros.bin": b"\0" * (20 * 1024 * 1024)})
    assert "inflates" in refused(tmp_path, bomb)
    small = ZipLimits(max_unpacked_bytes=1000, max_ratio=1e9, max_entries=100)
    big = make_zip(tmp_path / "big.zip", {"a.bin": b"a" * 600, "b.bin": b"b" * 600})
    assert "more than 1000 bytes" in refused(tmp_path, big, small)


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    many = make_zip(tmp_path / "many.zip", {f"f{index}.txt": b"x" for index in range(101)})
    assert "101 entries" in refused(tmp_path, many)


def test_lying_headers_are_caught_while_writing(tmp_path: Path) -> None:
    """A header that declares fewer bytes than the entry holds must not get past the counters."""
    source = make_zip(tmp_path / "liar.zip", {"data.bin": b"y" * 5000})
    raw = bytearray(source.read_bytes())
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (100).to_bytes(4, "little")
    local = raw.find(b"PK\x03\x04")
    raw[local + 22 : local + 26] = (100).to_bytes(4, "little")
    source.write_bytes(bytes(raw))
    reason = refused(tmp_path, source)
    assert "declared size" in reason or "readable" in reason


def test_other_files_are_not_zips(tmp_path: Path) -> None:
    text = tmp_path / "data.zip"
    text.write_text("target_class\n1\n")
    assert "not a zip file" in refused(tmp_path, text)


def test_many_small_entries_cannot_add_up_to_a_bomb(tmp_path: Path) -> None:
    """The attack of issue #15: nineteen 1 MiB zero-filled entries (about 21 KB packed) used to pass,
    each being at the per-entry threshold; the ratio over the whole archive refuses them."""
    default = ZipLimits(max_unpacked_bytes=2048 * 1024 * 1024, max_ratio=200, max_entries=20_000)
    bomb = make_zip(tmp_path / "many.zip", {f"part{index:02}.bin": b"\0" * (1 << 20) for index in range(19)})
    assert bomb.stat().st_size < 40_000
    reason = refused(tmp_path, bomb, default)
    assert "the archive inflates" in reason and "zip bomb guard" in reason


def test_a_small_archive_of_zeros_is_no_bomb(tmp_path: Path) -> None:
    """Below 1 MiB unpacked the ratio is not held against an archive: it cannot hurt."""
    source = make_zip(tmp_path / "zeros.zip", {"blank.bin": b"\0" * 500_000})
    assert unpack_zip(source, tmp_path / "out", LIMITS).bytes == 500_000


def write_raw_zip(path: Path, entries: list[tuple[str, bytes]]) -> Path:
    """A zip with exactly these entries, duplicates included (zipfile warns, then writes them)."""
    with zipfile.ZipFile(path, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for name, data in entries:
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([("a.txt", b"1"), ("a.txt", b"2")], "appears twice"),
        ([("data", b"file"), ("data/inner.csv", b"x")], "lies under a file"),
        ([("data/inner.csv", b"x"), ("data", b"file")], "both a file and a folder"),
        ([("data", b"file"), ("data/", b"")], "both a file and a folder"),
        ([("./a.txt", b"1"), ("a.txt", b"2")], "appears twice"),
    ],
)
def test_colliding_names_are_refused_before_anything_is_written(
    tmp_path: Path, entries: list[tuple[str, bytes]], reason: str
) -> None:
    source = write_raw_zip(tmp_path / "collide.zip", entries)
    assert reason in refused(tmp_path, source)


def test_file_system_refusals_become_the_uploads_fault_not_a_crash(tmp_path: Path) -> None:
    """A name the file system cannot hold (too long) answers UnsafeArchive (HTTP 400), not an OSError."""
    source = make_zip(tmp_path / "long.zip", {"x" * 300 + ".txt": b"1"})
    assert "cannot be unpacked" in refused(tmp_path, source)
