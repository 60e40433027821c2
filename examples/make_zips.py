"""Build test_data.zip (the HTRU2 pulsar CSV) and test_processor.zip (the MLflow projects of processor/) here.

Usage: python make_zips.py [path/to/HTRU_2.csv] [output folder]
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "pulsar" / "HTRU_2.csv"


def make_zips(data: Path, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    dataset, processor = out / "test_data.zip", out / "test_processor.zip"
    with zipfile.ZipFile(dataset, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(data, data.name)
    with zipfile.ZipFile(processor, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((HERE / "processor").rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(HERE / "processor").as_posix())
    return dataset, processor


if __name__ == "__main__":
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path.cwd()
    for path in make_zips(data, out):
        print(path)
