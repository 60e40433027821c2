"""The wrapper a ``local`` job runs in: it starts the job as its OS account and records the outcome.

The service or the Airflow worker that started the job may restart while it runs; the outcome file
lets any later process read how the job ended, which a bare PID cannot tell. The wrapper runs as the
service's user in the task's control folder (job spec, log, outcome: the job cannot touch them); the
job runs as the account in the spec, with exactly the environment in the spec, in its own work
folder, and writes its output through the log file descriptor the wrapper opened.
Usage: ``python -m ancora.remote.local_job <control folder>`` (reads ``job.json`` there).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

SPEC_NAME = "job.json"
OUTCOME_NAME = "outcome"
LOG_NAME = "job.log"
CANCELLED = "cancelled"
JOB_UMASK = 0o077


def write_outcome(control_dir: Path, outcome: str) -> None:
    partial = control_dir / f"{OUTCOME_NAME}.partial"
    partial.write_text(outcome)
    partial.replace(control_dir / OUTCOME_NAME)


def main(control_dir: Path) -> int:
    spec = json.loads((control_dir / SPEC_NAME).read_text())
    account = spec.get("account")
    with (control_dir / LOG_NAME).open("ab") as log:
        try:
            child = _start(spec, account, log)
        except (OSError, subprocess.SubprocessError) as problem:
            log.write(f"cannot start {spec['argv'][0]!r}: {problem}\n".encode())
            log.flush()
            write_outcome(control_dir, "127")
            return 0
        cancelled = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal cancelled
            cancelled = True
            child.terminate()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        code = child.wait()
    write_outcome(control_dir, CANCELLED if cancelled else str(code))
    return 0


def _start(spec: dict[str, Any], account: dict[str, int] | None, log: BinaryIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        spec["argv"],
        cwd=spec["cwd"],
        env=spec["environment"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        user=account["uid"] if account else None,
        group=account["gid"] if account else None,
        extra_groups=[] if account else None,
        umask=JOB_UMASK,
    )


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
