"""Submitted zips: every hostile shape is refused with a reason and leaves nothing behind."""

from __future__ import annotations

import stat
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
