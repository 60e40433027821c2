"""A lean closed-loop HTTP/1.1 load generator, so the client costs little of the cores it shares.

httpx spends about a millisecond of CPU per request in Python; on a 2-core machine that shared with
the server measures the client. This one keeps one keep-alive connection per simulated user on
uvloop, writes a pre-encoded request and reads ``Content-Length`` framed answers: tens of
microseconds per request. It runs in its own process and reports its own CPU time, so a result says
whether the client could have been the limit.

    python -m benchmarks.loadgen --url http://127.0.0.1:8000/predict --body row.json -c 32 -n 3000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class _Connection(asyncio.Protocol):
    """One simulated user: send, wait for the whole answer, record, send again."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.buffer = bytearray()
        self.expected: int | None = None
        self.status = 0
        self.started = 0.0
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        if not self.run.may_send():
            self.transport.close()
            return
        self.started = time.perf_counter()
        self.transport.write(self.run.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.expected is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            self.status = int(head[0].split(" ", 2)[1])
            length = None
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length is None:
                raise RuntimeError(f"answer without Content-Length: {head}")
            self.expected = end + 4 + length
        if len(self.buffer) >= self.expected:
            self.run.record(time.perf_counter() - self.started, self.status)
            del self.buffer[: self.expected]
            self.expected = None
            self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Run:
    def __init__(self, request: bytes, max_requests: int, max_seconds: float, warmup: int) -> None:
        self.request = request
        self.max_requests = max_requests
        self.warmup = warmup
        self.deadline = time.perf_counter() + max_seconds
        self.sent = 0
        self.latencies: list[float] = []
        self.failures = 0
        self.started = 0.0

    def may_send(self) -> bool:
        if self.sent >= self.max_requests + self.warmup or time.perf_counter() > self.deadline:
            return False
        self.sent += 1
        return True

    def record(self, seconds: float, status: int) -> None:
        if self.warmup:
            self.warmup -= 1
            if not self.warmup:
                self.started = time.perf_counter()
            return
        self.latencies.append(seconds)
        if status != 200:
            self.failures += 1


async def drive(
    url: str, body: bytes, concurrency: int, max_requests: int, max_seconds: float
) -> dict[str, Any]:
    """``concurrency`` connections in a closed loop; the first ``concurrency`` answers are warm-up."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    run = _Run(request, max_requests, max_seconds, warmup=concurrency)
    loop = asyncio.get_running_loop()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    connections = []
    for _ in range(concurrency):
        _, protocol = await loop.create_connection(lambda: _Connection(run), host, port)
        connections.append(protocol)
    await asyncio.gather(*(connection.closed for connection in connections))
    ended = time.perf_counter()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = ended - (run.started or ended)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    latencies = run.latencies
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "failures": run.failures,
        "seconds": round(elapsed, 2),
        "req_per_s": round(len(latencies) / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
        "client_cpu_s": round(cpu, 2),
        "client_cpu_ms_per_request": round(cpu * 1000 / max(1, run.sent), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", type=Path, required=True, help="file with the JSON body to POST")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-n", "--max-requests", type=int, default=3000)
    parser.add_argument("-t", "--max-seconds", type=float, default=20.0)
    args = parser.parse_args()
    import uvloop

    result = uvloop.run(
        drive(args.url, args.body.read_bytes(), args.concurrency, args.max_requests, args.max_seconds)
    )
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
