"""The wrapper a ``local`` job runs in: it records the command's outcome in a file.

The service or the Airflow worker that started the job may restart while it runs; the outcome file
lets any later process read how the job ended, which a bare PID cannot tell.
Usage: ``python -m ancora.remote.local_job <work folder>`` (reads ``job.json`` there).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

SPEC_NAME = "job.json"
OUTCOME_NAME = "outcome"
LOG_NAME = "job.log"
CANCELLED = "cancelled"


def write_outcome(work_dir: Path, outcome: str) -> None:
    partial = work_dir / f"{OUTCOME_NAME}.partial"
    partial.write_text(outcome)
    partial.replace(work_dir / OUTCOME_NAME)


def main(work_dir: Path) -> int:
    spec = json.loads((work_dir / SPEC_NAME).read_text())
    environment = {**os.environ, **spec["environment"]}
    with (work_dir / LOG_NAME).open("ab") as log:
        child = subprocess.Popen(
            spec["argv"], cwd=spec["cwd"], env=environment, stdout=log, stderr=subprocess.STDOUT
        )
        cancelled = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal cancelled
            cancelled = True
            child.terminate()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        code = child.wait()
    write_outcome(work_dir, CANCELLED if cancelled else str(code))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
