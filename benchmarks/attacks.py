"""The attacks of issue #15 on a real `ancora serve`, with what each gets now: status, time, reply size
and the API process's peak memory.

A small forest is registered as ``covertype@champion`` in a temporary MLflow server and served by
``python -m ancora serve`` with its default limits (16 KiB per /predict body, 10,000 rows per batch,
10 s for a request head, 30 s for a body). Each attack is one bounded request (or connection) over
loopback; while it runs, the API process's resident memory is sampled every 20 ms and ``/health``
is asked every 50 ms, so a stalled event loop shows as a slow ``/health``.

    uv run --frozen python -m benchmarks.attacks     # about 4 minutes, two of them waiting on timeouts
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil

from ancora.locations import COVERTYPE_CSV, shipped_dataset
from ancora.schema import FEATURE_NAMES
from ancora.serving.rows import EXAMPLE_ROW
from benchmarks.machine import describe_machine
from tests.support.inference import log_covertype_model, register, running_inference, wait_ready
from tests.support.mlflow_server import running_mlflow_server

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATA = shipped_dataset(COVERTYPE_CSV)
ROW = json.dumps(EXAMPLE_ROW)
CSV_HEADER = ",".join(FEATURE_NAMES)


BEFORE = {
    "/predict echo of a long value": "10 MB value: 422 after 4.4 s, a 130 MB reply, 794 MB peak",
    "/predict/batch echo of a long value": "422, a 247 MB reply",
    "/predict NaN": "500, connection dropped",
    "/predict Infinity": "500, connection dropped",
    "/predict 1e400": "500, connection dropped",
    "/predict invalid UTF-8": "500, connection dropped",
    "/predict/batch NaN": "500, connection dropped",
    "/predict/batch wide CSV header": "422 after 10.1 s, /health held 10.1 s",
    "/predict/batch 9 M tiny CSV rows": "413 after 5.5 s, 2.2 GB peak",
    "/predict/batch 6.5 M empty JSON rows": "413, 830 MB resident",
    "/predict/batch 10,000 rows, each with 12 errors": "422 after 1.9 s, +137 MB, /health held 650 ms",
    "/predict/batch deep nesting in a row": "500",
    "header flood": "200: all 50 MB of headers kept",
    "slow request head": "never answered, connection kept",
    "idle connection": "kept open",
    "slow /predict body": "read for as long as it came",
    "slow chunked batch": "read for as long as it came",
}
TIME_NOTE = (
    "Time is the client's, from building the body to the end of the answer (or the close): for the "
    "150 MB bodies most of it is the client building and sending what the server no longer reads."
)
BEFORE_NOTE = (
    "Before the fix: main at c48c063, the same requests on the same machine (load about 10), except the "
    "long /predict value (10 MB; 150 MB bodies were not sent to the old code on the shared machine: the "
    "issue measured one at 6.2 GB and a 1.9 GB reply), and the 10,000 bad rows (measured after the first "
    "fix, before validation stopped early)."
)


@dataclass
class Outcome:
    attack: str
    sent: str
    status: str
    seconds: float
    reply_bytes: int
    peak_rss_mb: float
    rss_growth_mb: float
    worst_health_ms: float


def listening_pid(port: int) -> int:
    """The process listening on ``port``: the API process of `ancora serve` (not its predict worker)."""
    for connection in psutil.net_connections("tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
            return int(connection.pid)
    raise RuntimeError(f"nothing listens on port {port}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def watching(url: str, pid: int) -> Iterator[dict[str, float]]:
    """Peak RSS of the API process and the slowest /health while the block runs."""
    seen = {"peak": rss_mb(pid), "base": rss_mb(pid), "health": 0.0}
    stop = threading.Event()

    def memory() -> None:
        while not stop.wait(0.02):
            seen["peak"] = max(seen["peak"], rss_mb(pid))

    def health() -> None:
        with httpx.Client(timeout=120) as client:
            while not stop.wait(0.05):
                started = time.monotonic()
                try:
                    client.get(f"{url}/health")
                except httpx.HTTPError:
                    continue
                seen["health"] = max(seen["health"], (time.monotonic() - started) * 1000)

    threads = [threading.Thread(target=memory), threading.Thread(target=health)]
    for thread in threads:
        thread.start()
    try:
        yield seen
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def http_attack(url: str, path: str, body: bytes | Iterator[bytes], content_type: str) -> tuple[str, int]:
    try:
        headers = {"content-type": content_type}
        response = httpx.post(f"{url}{path}", content=body, headers=headers, timeout=300)
    except httpx.HTTPError as error:
        return f"connection closed by the server ({type(error).__name__})", 0
    detail = response.text[:90].replace("\n", " ")
    return f"{response.status_code} {detail}", len(response.content)


def socket_attack(port: int, head: bytes, trickle: bytes, interval: float, limit: float) -> tuple[str, int]:
    """Send ``head``, then ``trickle`` every ``interval`` seconds until the server answers or closes."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(interval)
        with contextlib.suppress(OSError):  # the server may answer and close before the head is sent
            sock.sendall(head)
        deadline = time.monotonic() + limit
        received = b""
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                continue
            except TimeoutError:
                pass
            except OSError:
                break
            try:
                if trickle:
                    sock.sendall(trickle)
            except OSError:
                break
    first = received.split(b"\r\n", 1)[0].decode(errors="replace")
    return (first or "closed without an answer"), len(received)


def chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    yield b'{"Elevation": "'
    for _ in range(total // size):
        yield b"9" * size


Body = Callable[[], bytes]
Attack = Callable[[], tuple[str, int]]


def attacks(url: str, port: int) -> list[tuple[str, str, Attack]]:
    """Each body is built only when its attack runs: together they would hold 300 MB."""

    def one(body: Body) -> Attack:
        return lambda: http_attack(url, "/predict", body(), "application/json")

    def batch(body: Body, content_type: str = "application/json") -> Attack:
        return lambda: http_attack(url, "/predict/batch", body(), content_type)

    def raw(head: Body, trickle: bytes = b"", limit: float = 90) -> Attack:
        return lambda: socket_attack(port, head(), trickle, 0.5, limit)

    def with_field(field: str, literal: str) -> bytes:
        return (ROW[:-1] + f', "{field}": {literal}}}').encode()

    def flood() -> bytes:
        return b"GET /health HTTP/1.1\r\nHost: x\r\n" + (b"X-Junk: " + b"a" * 1000 + b"\r\n") * 50_000

    slow_one = b"POST /predict HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{"
    slow_batch = (
        b"POST /predict/batch HTTP/1.1\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    return [
        ("/predict with a 150 MB body (declared)", "150 MB JSON, Content-Length set",
         one(lambda: b'{"Elevation": "' + b"a" * 150_000_000 + b'"}')),
        ("/predict with a 150 MB body (chunked)", "150 MB JSON, no Content-Length",
         lambda: http_attack(url, "/predict", chunks(150 << 20), "application/json")),
        ("/predict echo of a long value", "a 15 KB string as Elevation",
         one(lambda: json.dumps({**EXAMPLE_ROW, "Elevation": "a" * 15_000}).encode())),
        ("/predict/batch echo of a long value", "a 19 MB string in one row",
         batch(lambda: b'[{"Elevation": "' + b"9" * 19_000_000 + b'"}]')),
        ("/predict NaN", "bare NaN as Elevation", one(lambda: with_field("Elevation", "NaN"))),
        ("/predict Infinity", "bare Infinity as Slope", one(lambda: with_field("Slope", "Infinity"))),
        ("/predict 1e400", "1e400 as Aspect", one(lambda: with_field("Aspect", "1e400"))),
        ("/predict invalid UTF-8", "0xff 0xfe in Soil_Type",
         one(lambda: ROW[:-1].encode() + b', "Soil_Type": "\xff\xfe"}')),
        ("/predict/batch NaN", "bare NaN in row 2",
         batch(lambda: b"[" + ROW.encode() + b", " + with_field("Slope", "NaN") + b"]")),
        ("/predict/batch invalid UTF-8 (CSV)", "0xff in a CSV cell",
         batch(lambda: (CSV_HEADER + "\n").encode() + b"\xff\n", "text/csv")),
        ("/predict/batch wide CSV header", "20,000 header columns (129 KB)",
         batch(lambda: ",".join(f"c{i}" for i in range(20_000)).encode() + b"\n", "text/csv")),
        ("/predict/batch 9 M tiny CSV rows", "18 MB: header + 9,000,000 lines '1'",
         batch(lambda: (CSV_HEADER + "\n" + "1\n" * 9_000_000).encode(), "text/csv")),
        ("/predict/batch 6.5 M empty JSON rows", "19.5 MB: [{},{},...]",
         batch(lambda: b"[" + b"{}," * 6_500_000 + b"{}]")),
        ("/predict/batch 10,000 rows, each with 12 errors", "10,000 x {\"x\": 1000 chars}",
         batch(lambda: json.dumps([{"x": "y" * 1000}] * 10_000).encode())),
        ("/predict/batch deep nesting", "100,000 nested lists",
         batch(lambda: b"[" * 100_000 + b"]" * 100_000)),
        ("/predict/batch deep nesting in a row", "a row with 100,000 nested objects",
         batch(lambda: b"[" + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"]")),
        ("header flood", "GET /health with 50 MB of header lines", raw(flood, limit=60)),
        ("slow request head", "one byte of the head every 0.5 s",
         raw(lambda: b"GET /health HTTP/1.1\r\nH", b"o", 60)),
        ("idle connection", "connect, send nothing", raw(lambda: b"", limit=60)),
        ("slow /predict body", "Content-Length 400, one byte every 0.5 s", raw(lambda: slow_one, b" ")),
        ("slow chunked batch", "a 1-byte chunk every 0.5 s", raw(lambda: slow_batch, b"1\r\na\r\n")),
    ]  # fmt: skip


def legit_batch(url: str, data: pd.DataFrame) -> Callable[[], tuple[str, int]]:
    text = data[list(FEATURE_NAMES)].head(10_000).to_csv(index=False).encode()
    return lambda: http_attack(url, "/predict/batch", text, "text/csv")


def run(url: str, pid: int, port: int, data: pd.DataFrame) -> list[Outcome]:
    outcomes = []
    plan = [*attacks(url, port), ("/predict/batch 10,000 valid CSV rows (reference)", "0.9 MB CSV",
                                  legit_batch(url, data))]  # fmt: skip
    for name, sent, action in plan:
        time.sleep(1.0)
        with watching(url, pid) as seen:
            started = time.monotonic()
            status, reply = action()
            seconds = time.monotonic() - started
        outcome = Outcome(
            name, sent, status, round(seconds, 2), reply, round(seen["peak"], 1),
            round(seen["peak"] - seen["base"], 1), round(seen["health"], 1),
        )  # fmt: skip
        print(json.dumps(asdict(outcome)), flush=True)
        outcomes.append(outcome)
    return outcomes


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        "# Attacks on the inference API (issue #15)",
        "",
        f"Run {results['started_at']} on {machine['cpu']} ({machine['cores']} cores, "
        f"{machine['memory_gib']} GiB), "
        f"load average {results['load_before']} before, {results['load_after']} after. "
        "`uv run --frozen python -m benchmarks.attacks`; raw figures in `attacks.json`.",
        "",
        "| attack | sent | answer | time (s) | reply (bytes) | API peak RSS (MB) | RSS growth (MB) "
        "| worst /health (ms) | before the fix |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for o in results["outcomes"]:
        lines.append(
            f"| {o['attack']} | {o['sent']} | {o['status'][:60]} | {o['seconds']} | {o['reply_bytes']} | "
            f"{o['peak_rss_mb']} | {o['rss_growth_mb']} | {o['worst_health_ms']} | "
            f"{BEFORE.get(o['attack'], '')} |"
        )
    lines += ["", BEFORE_NOTE, "", TIME_NOTE]
    return "\n".join(lines) + "\n"


def main() -> None:
    data = pd.read_csv(DATA)
    results: dict[str, Any] = {
        "machine": describe_machine(),
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_before": round(os.getloadavg()[0], 2),
    }
    with tempfile.TemporaryDirectory(prefix="ancora-bench-attacks-") as folder:
        work = Path(folder)
        with running_mlflow_server(work / "mlflow") as tracking_uri:
            logged = log_covertype_model(tracking_uri, data.head(5000), n_estimators=30, seed=0)
            register(tracking_uri, "covertype", logged, alias="champion")
            with running_inference(work / "inference", tracking_uri, poll_seconds=60) as url:
                wait_ready(url)
                port = httpx.URL(url).port
                assert port is not None
                pid = listening_pid(port)
                results["outcomes"] = [asdict(o) for o in run(url, pid, port, data)]
    results["load_after"] = round(os.getloadavg()[0], 2)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "attacks.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "attacks.md").write_text(markdown(results))


if __name__ == "__main__":
    main()
