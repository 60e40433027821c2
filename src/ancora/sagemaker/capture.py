"""Data capture of the ``local`` target: what an endpoint was asked and what it answered.

A folder gets one JSON line per request at once (``<folder>/<endpoint>/YYYY/MM/DD/capture.jsonl``).
An ``s3://bucket/prefix`` gets the lines in batches, one object per endpoint and flush, under
SageMaker's own layout (``<prefix>/<endpoint>/AllTraffic/YYYY/MM/DD/HH/<time>-<id>.jsonl``), so an
inference never waits for S3. Lines not yet written are lost if the service is killed, as SageMaker's
capture is best effort too; a failed upload is retried at the next flush, up to a bound.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ancora.sagemaker.locations import is_s3, parse_s3

log = logging.getLogger(__name__)

MAX_PENDING_LINES = 100_000
"""Lines kept per destination while S3 refuses them; older ones are dropped beyond this."""


class CaptureWriter:
    def __init__(self, s3_client: Callable[[], Any], flush_seconds: float) -> None:
        self._s3_client = s3_client
        self._s3: Any = None
        self._flush_seconds = flush_seconds
        self._pending: dict[tuple[str, str], list[str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, endpoint: str, location: str, content_type: str, payload: bytes, answer: Any) -> None:
        now = datetime.now(UTC)
        line = json.dumps(
            {
                "time": now.isoformat(),
                "content_type": content_type,
                "input": payload.decode(errors="replace"),
                "output": answer,
            }
        )
        if not is_s3(location):
            folder = Path(location) / endpoint / now.strftime("%Y/%m/%d")
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / "capture.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
            return
        with self._lock:
            self._pending.setdefault((endpoint, location), []).append(line)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="byom-capture", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            self.flush()

    def flush(self, endpoint: str | None = None) -> None:
        """Write what is pending (of one endpoint, or all) to S3 now."""
        with self._lock:
            keys = [key for key in self._pending if endpoint is None or key[0] == endpoint]
            batches = {key: self._pending.pop(key) for key in keys}
        for (name, location), lines in batches.items():
            if not lines:
                continue
            try:
                self._upload(name, location, lines)
            except Exception:
                log.exception("capture of %s to %s not written; kept for the next flush", name, location)
                with self._lock:
                    kept = lines + self._pending.get((name, location), [])
                    self._pending[(name, location)] = kept[-MAX_PENDING_LINES:]

    def _upload(self, endpoint: str, location: str, lines: list[str]) -> None:
        if self._s3 is None:
            self._s3 = self._s3_client()
        target = parse_s3(location, "data_capture_location")
        now = datetime.now(UTC)
        key = "/".join(
            part
            for part in (
                target.key.strip("/"),
                endpoint,
                "AllTraffic",
                now.strftime("%Y/%m/%d/%H"),
                f"{now.strftime('%H%M%S-%f')}-{uuid.uuid4().hex[:8]}.jsonl",
            )
            if part
        )
        self._s3.put_object(Bucket=target.bucket, Key=key, Body=("\n".join(lines) + "\n").encode())

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._flush_seconds + 5)
        self.flush()
