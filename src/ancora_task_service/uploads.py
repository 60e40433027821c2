"""Receiving a submission's multipart body as a stream, after the login was checked.

FastAPI parses a declared form before any dependency runs, spooling every file to a temporary file
first: an 80 MB body without a token would be written to disk and only then answered 401. So the
submit route declares no form; its dependencies (the login) run first, the declared
``Content-Length`` is checked, and only then is the body read here, chunk by chunk: the two zips go
straight into the task's folder, every byte is counted (a missing or lying Content-Length changes
nothing), and the first byte over a limit stops the upload.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from ancora.remote.service import UploadTooLarge, upload_path

FILE_FIELDS = {"dataset_file": "dataset", "processor_file": "processor"}
MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 32


class BadForm(ValueError):
    """The body is not the multipart form the endpoint takes (HTTP 400, or 415 for another type)."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    filenames: dict[str, str] = field(default_factory=dict)
    """Role (dataset, processor) to the file name the client gave."""


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary, or BadForm (415) for a body that is not multipart/form-data."""
    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadForm("send the task as multipart/form-data (dataset_file, processor_file and fields)", 415)
    return boundary


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)
    sink: BinaryIO | None = None
    written: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)


class _Receiver:
    """python-multipart callbacks that route file data to the task folder and keep small fields."""

    def __init__(self, folder: Path, max_file_bytes: int) -> None:
        self.folder = folder
        self.max_file_bytes = max_file_bytes
        self.form = ReceivedForm()
        self.part = _Part()
        self.parts = 0
        self.header_name = b""
        self.header_value = b""
        self.pending: list[tuple[BinaryIO, bytes]] = []
        self.sinks: list[BinaryIO] = []

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise BadForm(f"the form has more than {MAX_PARTS} parts")
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[self.header_name.lower()] = self.header_value
        self.header_name, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise BadForm("a form part has no name (Content-Disposition)")
        self.part.name = _text(options[b"name"], "a part name")
        if b"filename" not in options:
            return
        self.part.filename = _text(options[b"filename"], f"the file name of {self.part.name}")
        role = FILE_FIELDS.get(self.part.name)
        if role is None:
            raise BadForm(f"unexpected file field {self.part.name!r}; send dataset_file and processor_file")
        if role in self.form.filenames:
            raise BadForm(f"{self.part.name} was sent twice")
        self.form.filenames[role] = self.part.filename
        target = upload_path(self.folder, role)
        target.parent.mkdir(mode=0o700, exist_ok=True)
        self.part.sink = target.open("xb")
        self.sinks.append(self.part.sink)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.part.sink is not None:
            self.part.written += len(chunk)
            if self.part.written > self.max_file_bytes:
                raise UploadTooLarge(f"{self.part.name} is larger than {self.max_file_bytes} bytes")
            self.pending.append((self.part.sink, chunk))
            return
        if len(self.part.data) + len(chunk) > MAX_FIELD_BYTES:
            raise BadForm(f"form field {self.part.name!r} is longer than {MAX_FIELD_BYTES} bytes")
        self.part.data += chunk

    def on_part_end(self) -> None:
        if self.part.sink is None:
            self.form.fields[self.part.name] = _text(bytes(self.part.data), f"form field {self.part.name!r}")

    def flush(self) -> None:
        for sink, chunk in self.pending:
            sink.write(chunk)
        self.pending.clear()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def _text(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise BadForm(f"{what} is not UTF-8") from problem


async def receive_submission(
    request: Request, folder: Path, max_file_bytes: int, max_request_bytes: int
) -> ReceivedForm:
    """Stream the form into ``folder``; UploadTooLarge past a limit, BadForm for a broken body."""
    receiver = _Receiver(folder, max_file_bytes)
    parser = MultipartParser(boundary_of(request.headers.get("content-type")), receiver.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_request_bytes:
                raise UploadTooLarge(f"the request is larger than {max_request_bytes} bytes")
            parser.write(chunk)
            if receiver.pending:
                await run_in_threadpool(receiver.flush)
        parser.finalize()
        await run_in_threadpool(receiver.flush)
    except FormParserError as problem:
        raise BadForm(f"the multipart body is malformed: {problem}") from problem
    except ClientDisconnect as problem:
        raise BadForm("the client went away before the upload ended") from problem
    finally:
        receiver.close()
    for name, role in FILE_FIELDS.items():
        if role not in receiver.form.filenames:
            raise BadForm(f"{name} is missing: send the {role} as a zip file")
    return receiver.form
