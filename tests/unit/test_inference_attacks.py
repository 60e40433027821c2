"""Attacks on the inference API over loopback sockets, each bounded, each refused (issue #15).

The real app behind the real HTTP server (``ancora.http_server``'s uvicorn protocol), in a thread,
with a small fitted pipeline as the served model. Every attack here once got a 500, a dropped
connection, a reply larger than its request, gigabytes of memory or a stalled event loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from ancora.schema import FEATURE_NAMES, LABEL_NAME
from ancora.serving import rows
from ancora.serving.errors import MAX_REPORTED_ERRORS, PREVIEW_CHARS
from ancora.serving.rows import EXAMPLE_ROW
from ancora_inference.routes import predict as predict_routes
from tests.support.inference import covertype_pipeline
from tests.support.served_app import app_serving, read_until_closed, serving_in_thread

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
BATCH_LIMIT = 1000
ROW = json.dumps(EXAMPLE_ROW)
CSV_HEADER = ",".join(FEATURE_NAMES)
CSV_ROW = ",".join(EXAMPLE_ROW[name] for name in FEATURE_NAMES)


@pytest.fixture(scope="module")
def pipeline(covertype_csv: Path) -> Any:
    data = pd.read_csv(covertype_csv, nrows=1000)
    fitted: Any = covertype_pipeline(n_estimators=5, seed=0)
    fitted.fit(data[list(FEATURE_NAMES)], data[LABEL_NAME])
    return fitted


@pytest.fixture(scope="module")
def served(pipeline: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    app = app_serving(
        pipeline,
        tmp_path_factory.mktemp("inference"),
        inference_batch_max_rows=BATCH_LIMIT,
        inference_header_timeout_seconds=HEADER_TIMEOUT,
        inference_body_timeout_seconds=BODY_TIMEOUT,
    )
    with serving_in_thread(app) as served:
        yield served


@pytest.fixture
def client(served: tuple[str, int]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[0], timeout=60) as client:
        yield client


def _post(client: httpx.Client, path: str, body: bytes | str, content_type: str = "application/json") -> Any:
    return client.post(path, content=body, headers={"content-type": content_type})


def _with(field: str, literal: str) -> str:
    """The example row with one field's value replaced by a raw JSON token."""
    return ROW[:-1] + f', "{field}": {literal}}}'


def test_a_declared_oversized_predict_body_is_refused_before_it_is_read(served: tuple[str, int]) -> None:
    # The attack was a 150 MB body; declaring it is enough: not a byte of it is read.
    with socket.create_connection(("127.0.0.1", served[1])) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 150000000\r\n\r\n{"
        )
        reply = read_until_closed(sock, timeout=30)
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in reply.lower()
    assert b"larger than 16384 bytes" in reply


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_a_streamed_oversized_body_is_cut_off_at_the_cap(client: httpx.Client, path: str) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"Elevation": "'
        for _ in range(3000):  # at most 192 MB, which the server must not wait for
            sent += 65536
            yield b"9" * 65536

    try:
        response = client.post(path, content=chunks(), headers={"content-type": "application/json"})
    except httpx.TransportError:  # the server answered and closed while the client was still sending
        assert sent < 64 * 1024 * 1024
        return
    assert response.status_code == 413
    assert sent < 64 * 1024 * 1024


def test_an_error_echoes_only_a_short_prefix_of_the_input(client: httpx.Client) -> None:
    value = "a" * 15_000  # under the 16 KiB cap
    response = _post(client, "/predict", json.dumps({**EXAMPLE_ROW, "Elevation": value}))
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "Elevation"]
    assert error["input"] == "a" * PREVIEW_CHARS + "…"
    assert len(response.content) < 1000
    batch = _post(client, "/predict/batch", json.dumps([{**EXAMPLE_ROW, "Elevation": "9" * 1_000_000}]))
    assert batch.status_code == 422
    assert len(batch.content) < 1000


def test_a_batch_of_bad_rows_reports_a_bounded_number_of_errors(client: httpx.Client) -> None:
    response = _post(client, "/predict/batch", json.dumps([{"x": "y" * 1000}] * BATCH_LIMIT))
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert len(errors) == MAX_REPORTED_ERRORS + 1
    assert errors[0]["loc"] == ["body", 0, "Elevation"]
    assert errors[-1]["type"] == "too_many_errors"
    assert errors[-1]["msg"].startswith("at least ")
    assert errors[-2]["loc"][1] < 100, "the rows past the first chunk were checked too"
    assert len(response.content) < 50_000


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_a_422_naming_the_field(client: httpx.Client, literal: str) -> None:
    one = _post(client, "/predict", _with("Elevation", literal))
    assert one.status_code == 422, one.text
    assert one.json()["detail"][0]["loc"] == ["body", "Elevation"]
    assert one.json()["detail"][0]["type"] == "finite_number"
    batch = _post(client, "/predict/batch", f"[{ROW}, {_with('Slope', literal)}]")
    assert batch.status_code == 422, batch.text
    assert batch.json()["detail"][0]["loc"] == ["body", 1, "Slope"]
    assert client.post("/predict", json=EXAMPLE_ROW).status_code == 200  # the connection was kept


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/predict", ROW[:-1].encode() + b', "Soil_Type": "C72\xff\xfe"}', "application/json"),
        ("/predict", b"\xff" * 100, "application/json"),
        ("/predict/batch", b"[" + ROW.encode()[:-1] + b', "x": "\xc3\x28"}]', "application/json"),
        ("/predict/batch", (CSV_HEADER + "\n").encode() + b"\xff\xfe\n", "text/csv"),
    ],
)
def test_invalid_utf8_is_a_422(client: httpx.Client, path: str, body: bytes, content_type: str) -> None:
    response = _post(client, path, body, content_type)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "body"
    assert client.get("/health").status_code == 200


def test_a_wide_csv_header_is_refused_before_its_names_are_compared(client: httpx.Client) -> None:
    header = ",".join(f"c{index}" for index in range(20_000))  # the 129 KB header
    response = _post(client, "/predict/batch", header + "\n", "text/csv")
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert "it has 20000 columns; at most 13 are allowed" in error["msg"]
    assert len(response.content) < 2000
    twice = _post(client, "/predict/batch", f"{CSV_HEADER},Slope\n{CSV_ROW},4\n", "text/csv")
    assert "duplicated columns: Slope" in twice.json()["detail"][0]["msg"]


def test_batches_are_parsed_off_the_event_loop(client: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed_on_loop: list[bool] = []

    def recording(parse: Any) -> Any:
        def parse_and_record(body: bytes, limit: int) -> Any:
            try:
                asyncio.get_running_loop()
                parsed_on_loop.append(True)
            except RuntimeError:
                parsed_on_loop.append(False)
            return parse(body, limit)

        return parse_and_record

    monkeypatch.setattr(predict_routes, "parse_csv_columns", recording(rows.parse_csv_columns))
    monkeypatch.setattr(predict_routes, "parse_json_columns", recording(rows.parse_json_columns))
    assert _post(client, "/predict/batch", f"{CSV_HEADER}\n{CSV_ROW}\n", "text/csv").status_code == 200
    assert _post(client, "/predict/batch", f"[{ROW}]").status_code == 200
    assert parsed_on_loop == [False, False]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[" + b"{}," * 600_000 + b"{}]", "application/json"),  # under the 2 MB byte cap
        (b"[" + b"0," * 900_000 + b"0]", "application/json"),
        ((CSV_HEADER + "\n" + "1\n" * 900_000).encode(), "text/csv"),
        ((CSV_HEADER + "\n" + ",,,,,,,,,,,\n" * 150_000).encode(), "text/csv"),
    ],
)
def test_many_tiny_rows_are_refused_at_the_first_row_past_the_limit(
    client: httpx.Client, body: bytes, content_type: str
) -> None:
    response = _post(client, "/predict/batch", body, content_type)
    assert response.status_code == 413
    assert response.json()["detail"] == (
        f"the batch has more than {BATCH_LIMIT} rows; at most {BATCH_LIMIT} are accepted per request"
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict", b"[" * 8000 + b"]" * 8000),
        ("/predict", ROW.encode()[:-1] + b', "extra": ' + b"[" * 7000 + b"]" * 7000 + b"}"),
        ("/predict/batch", b"[" * 100_000 + b"]" * 100_000),
        ("/predict/batch", b"[" + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"]"),
        ("/predict/batch", b"[" + ROW.encode()[:-1] + b', "extra": ' + b"[" * 50_000 + b"]" * 50_000 + b"}]"),
    ],
)
def test_deeply_nested_json_is_a_422(client: httpx.Client, path: str, body: bytes) -> None:
    response = _post(client, path, body)
    assert response.status_code == 422, response.text[:300]
    assert len(response.content) < 2000


def test_a_header_flood_is_refused_with_431(served: tuple[str, int]) -> None:
    with socket.create_connection(("127.0.0.1", served[1])) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(10_000):  # up to 10 MB of header lines; uvicorn alone kept them all
                sock.sendall(b"X-Junk: " + b"a" * 1000 + b"\r\n")
        except OSError:
            pass  # closed by the server after its answer
        reply = read_until_closed(sock, timeout=30)
    assert reply.startswith(b"HTTP/1.1 431 ")


def test_an_idle_connection_is_closed_after_the_header_timeout(served: tuple[str, int]) -> None:
    with socket.create_connection(("127.0.0.1", served[1])) as sock:
        started = time.monotonic()
        assert read_until_closed(sock, timeout=30) == b""
        assert time.monotonic() - started < 30, "the server never closed the connection"


def test_a_slow_request_head_gets_408(served: tuple[str, int]) -> None:
    with socket.create_connection(("127.0.0.1", served[1])) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHo")  # and nothing more
        assert read_until_closed(sock, timeout=30).startswith(b"HTTP/1.1 408 ")


def test_deadlines_count_from_each_request_on_a_kept_alive_connection(served: tuple[str, int]) -> None:
    """One timer serves a connection's requests: a request answered after the first head's deadline
    would have passed must not be cut, and the next slow head still gets its 408 on time."""
    health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", served[1])) as sock:
        sock.settimeout(10)
        for _ in range(3):  # together longer than the header timeout
            sock.sendall(health)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            time.sleep(HEADER_TIMEOUT * 0.6)
        sock.sendall(b"GET /health HTTP/1.1\r\nHo")
        started = time.monotonic()
        assert read_until_closed(sock, timeout=30).startswith(b"HTTP/1.1 408 ")
        waited = time.monotonic() - started
    assert HEADER_TIMEOUT * 0.9 <= waited < HEADER_TIMEOUT + 1.5, f"408 after {waited:.2f} s"


SLOW_ONE = b"POST /predict HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{"
SLOW_BATCH = b"POST /predict/batch HTTP/1.1\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(("head", "trickle"), [(SLOW_ONE, b" "), (SLOW_BATCH, b"1\r\na\r\n")])
def test_a_slow_body_gets_408(served: tuple[str, int], head: bytes, trickle: bytes) -> None:
    with socket.create_connection(("127.0.0.1", served[1])) as sock:
        sock.sendall(head)
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:  # a byte every 0.2 s: never idle, never done
                sock.sendall(trickle)
                time.sleep(0.2)
                sock.setblocking(False)
                try:
                    if sock.recv(1, socket.MSG_PEEK):
                        break
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
        except OSError:
            pass
        reply = read_until_closed(sock, timeout=30)
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
    assert b"did not arrive within 2 seconds" in reply


def test_a_trickled_body_nobody_reads_is_cut_off(served: tuple[str, int]) -> None:
    with socket.create_connection(("127.0.0.1", served[1])) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n")
        deadline = time.monotonic() + 30
        closed = False
        while time.monotonic() < deadline and not closed:
            try:
                sock.sendall(b" ")
            except OSError:
                closed = True
            time.sleep(0.2)
        reply = read_until_closed(sock, timeout=5)
    assert reply.startswith(b"HTTP/1.1 200 ")  # answered at once; the connection is closed later
    assert closed, "the server kept reading the trickle for 30 s"
