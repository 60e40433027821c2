"""The ``local`` BYOM target: the container's programs run natively, one process per endpoint.

``model.tar.gz`` is checked and unpacked under ``state_dir/provisioning/endpoints/<endpoint>/<pipeline>``
and ``serve`` starts on a free loopback port; provisioning the same endpoint again starts the new
version next to the old one and switches when it answers ``/ping``. A failure at any step stops what
it started and deletes its folder. Endpoint processes are children of the provisioning service, in
their own sessions: their pid and start time are recorded, so a service that was killed finds and
stops the orphans of its predecessor before it starts the endpoints again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from ancora.config import Settings
from ancora.sagemaker.aws import aws_client
from ancora.sagemaker.byom import ArtifactError, ProvisionRequest, extract_archive
from ancora.sagemaker.capture import CaptureWriter
from ancora.sagemaker.locations import LocationError, is_s3, parse_s3
from ancora.sagemaker.registry import Endpoint, Pipeline, PipelineRegistry, PipelineStatus
from ancora.sagemaker.targets import DeployError, Outcome, Prediction
from ancora.stack.processes import is_running, process_info

log = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 10.0
BATCH_TIMEOUT_SECONDS = 6 * 3600
CONTAINER = [sys.executable, "-m", "ancora.sagemaker.container"]


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, size: int = 2000) -> str:
    if not path.exists():
        return ""
    return path.read_bytes()[-size:].decode(errors="replace").strip()


def _spawn(argv: list[str], log_path: Path) -> tuple[subprocess.Popen[bytes], int | None]:
    """A child in its own session (a stop reaches its whole group), with its start time for later."""
    with log_path.open("ab") as output:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    info = process_info(process.pid)
    return process, info.start_ticks if info else None


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def stop_recorded(pid: int | None, start_ticks: int | None) -> bool:
    """Stop a process group this service (or a killed predecessor) started, known by pid and start
    time; a pid reused by another process has another start time and is left alone."""
    if not pid or start_ticks is None or not is_running(pid, start_ticks):
        return False
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if not is_running(pid, start_ticks):
                return True
            time.sleep(0.05)
    return not is_running(pid, start_ticks)


class LocalTarget:
    name = "local"

    def __init__(self, settings: Settings, registry: PipelineRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.root = settings.state_dir / "provisioning"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._batches: dict[str, subprocess.Popen[bytes] | None] = {}
        self._lock = threading.Lock()
        self._closing = False
        self._http = httpx.Client(timeout=settings.byom_inference_timeout_seconds)
        self._s3_client: Any = None
        self.capture = CaptureWriter(self._s3, settings.byom_capture_flush_seconds)

    def _s3(self) -> Any:
        if self._s3_client is None:
            self._s3_client = aws_client(self.settings, "s3")
        return self._s3_client

    def provision(self, request: ProvisionRequest, pipeline_id: str) -> Outcome:
        if request.pipeline_type.realtime:
            return self._deploy(request, pipeline_id)
        return self._start_batch(request, pipeline_id)

    def _fetch(self, location: str, shown: str, workdir: Path) -> Path:
        """The archive as a local file: the path itself, or a download from S3 (size checked first)."""
        if not is_s3(location):
            return Path(location)
        from botocore.exceptions import ClientError

        target = parse_s3(location, "model_artifact_location")
        s3 = self._s3()
        try:
            size = s3.head_object(Bucket=target.bucket, Key=target.key)["ContentLength"]
        except ClientError as problem:
            raise ArtifactError(f"model_artifact_location {shown!r}: model.tar.gz not found") from problem
        if size > self.settings.byom_max_model_bytes:
            raise ArtifactError(f"{shown} is {size} bytes; the limit is {self.settings.byom_max_model_bytes}")
        workdir.mkdir(parents=True, exist_ok=True)
        archive = workdir / "model.tar.gz"
        s3.download_file(target.bucket, target.key, str(archive))
        return archive

    def _unpack(self, location: str, shown: str, prefix: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="byom-") as scratch:
            archive = self._fetch(location, shown, Path(scratch))
            extract_archive(archive, prefix / "model", self.settings.byom_max_model_bytes, shown)

    def _check_capture(self, location: str | None) -> None:
        """An S3 capture bucket must exist now, not at the first request (SageMaker checks it too)."""
        if not location or not is_s3(location):
            return
        from botocore.exceptions import BotoCoreError, ClientError

        target = parse_s3(location, "data_capture_location")
        try:
            self._s3().head_bucket(Bucket=target.bucket)
        except (ClientError, BotoCoreError) as problem:
            raise LocationError(
                f"data_capture_location: bucket {target.bucket!r} cannot be reached: {problem}"
            ) from problem

    def _deploy(self, request: ProvisionRequest, pipeline_id: str) -> Outcome:
        endpoint = request.target_endpoint
        self._check_capture(request.data_capture_location)
        prefix = self.root / "endpoints" / endpoint / pipeline_id
        try:
            self._unpack(str(request.model_artifact_location), request.shown_artifact, prefix)
            url, process, start_ticks = self._launch(endpoint, prefix)
        except BaseException:
            shutil.rmtree(prefix, ignore_errors=True)
            raise
        previous = self.registry.endpoint(endpoint)
        details = {"url": url, "pid": process.pid, "start_ticks": start_ticks, "prefix": str(prefix)}
        self.registry.put_endpoint(
            endpoint,
            target=self.name,
            pipeline_id=pipeline_id,
            details=details,
            data_capture_location=request.data_capture_location,
        )
        with self._lock:
            old_process = self._processes.get(endpoint)
            self._processes[endpoint] = process
        if old_process is not None:
            _stop(old_process)
        if previous is not None and previous.details.get("prefix") not in (None, str(prefix)):
            shutil.rmtree(previous.details["prefix"], ignore_errors=True)
        verb = "updated" if previous is not None else "created"
        return Outcome(PipelineStatus.SUCCEEDED, f"endpoint {endpoint} {verb}", details)

    def _launch(self, endpoint: str, prefix: Path) -> tuple[str, subprocess.Popen[bytes], int | None]:
        """Start ``serve`` on a free port and wait for ``/ping``; a model that does not load is a 422."""
        host = self.settings.bind_host
        port = free_port(host)
        log_path = prefix / "serve.log"
        argv = [*CONTAINER, "serve", "--prefix", str(prefix), "--host", host, "--port", str(port)]
        process, start_ticks = _spawn(argv, log_path)
        url = f"http://{host}:{port}"
        deadline = time.monotonic() + self.settings.byom_start_timeout_seconds
        try:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    log.error(
                        "serve for %s exited with %s:\n%s", endpoint, process.returncode, _tail(log_path)
                    )
                    raise DeployError(
                        502,
                        f"the process of endpoint {endpoint} exited with {process.returncode} before it "
                        "answered /ping (its output is in the provisioning service's log)",
                    )
                try:
                    answer = self._http.get(f"{url}/ping", timeout=1.0)
                except httpx.TransportError:
                    time.sleep(0.1)
                    continue
                if answer.status_code == 200:
                    return url, process, start_ticks
                raise DeployError(422, f"the model of {endpoint} does not load: {answer.text.strip()}")
            raise DeployError(
                504, f"endpoint {endpoint} not ready after {self.settings.byom_start_timeout_seconds:g} s"
            )
        except BaseException:
            _stop(process)
            raise

    def _batch_inputs(self, location: str) -> list[str]:
        """The CSV objects of an S3 batch input (one key, or every ``.csv`` under a prefix)."""
        from botocore.exceptions import ClientError

        target = parse_s3(location, "batch_inference_data")
        s3 = self._s3()
        if target.key and not target.key.endswith("/"):
            try:
                s3.head_object(Bucket=target.bucket, Key=target.key)
                return [target.key]
            except ClientError:
                pass
        keys: list[str] = []
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=target.key):
                keys += [item["Key"] for item in page.get("Contents", []) if item["Key"].endswith(".csv")]
        except ClientError as problem:
            raise LocationError(f"batch_inference_data {location!r} cannot be listed: {problem}") from problem
        if not keys:
            raise LocationError(f"batch_inference_data {location!r} holds no CSV object")
        return keys

    def _start_batch(self, request: ProvisionRequest, pipeline_id: str) -> Outcome:
        source = str(request.batch_inference_data)
        if is_s3(source):
            inputs = self._batch_inputs(source)
        else:
            path = Path(source)
            if not (path.is_file() or (path.is_dir() and any(path.glob("*.csv")))):
                raise LocationError(
                    f"batch_inference_data {request.shown('batch_inference_data')!r} is neither a CSV "
                    "file nor a folder of CSVs"
                )
            inputs = []
        prefix = self.root / "batch" / pipeline_id
        try:
            self._unpack(str(request.model_artifact_location), request.shown_artifact, prefix)
        except BaseException:
            shutil.rmtree(prefix, ignore_errors=True)
            raise
        with self._lock:
            self._batches[pipeline_id] = None
        thread = threading.Thread(
            target=self._run_batch,
            args=(pipeline_id, source, inputs, str(request.batch_job_output_location), prefix),
            name=f"byom-batch-{pipeline_id[:8]}",
            daemon=True,
        )
        return Outcome(
            PipelineStatus.IN_PROGRESS,
            f"batch job scoring {request.shown('batch_inference_data')}",
            {"prefix": str(prefix)},
            follow_up=thread.start,
        )

    def _run_batch(self, pipeline_id: str, source: str, inputs: list[str], output: str, prefix: Path) -> None:
        """Download (S3), score with the ``batch`` program, upload (S3); the outcome goes to the registry
        unless the pipeline was deleted meanwhile."""
        status, message = PipelineStatus.FAILED, "the batch job did not finish"
        try:
            input_path = Path(source)
            if inputs:
                input_path = prefix / "input"
                self._download(source, inputs, input_path)
            output_path = prefix / "output" if is_s3(output) else Path(output)
            argv = [*CONTAINER, "batch", "--prefix", str(prefix), "--input", str(input_path)]
            argv += ["--output", str(output_path)]
            log_path = prefix / "batch.log"
            process, start_ticks = _spawn(argv, log_path)
            with self._lock:
                deleted = pipeline_id not in self._batches
                self._batches[pipeline_id] = process
            if deleted:
                _stop(process)
                return
            pipeline = self.registry.get(pipeline_id)
            details = {
                **(pipeline.details if pipeline else {}),
                "pid": process.pid,
                "start_ticks": start_ticks,
            }
            self.registry.update(pipeline_id, details=details, only_if=PipelineStatus.IN_PROGRESS)
            try:
                process.wait(timeout=BATCH_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                _stop(process)
                message = "batch job timed out"
                return
            lines = _tail(log_path).splitlines()
            if self._closing:
                message = "the batch job was stopped with the provisioning service"
                return
            if process.returncode != 0:
                message = lines[-1] if lines else f"the batch program exited with {process.returncode}"
                return
            if is_s3(output):
                self._upload(output_path, output)
            summary = json.loads(lines[-1])
            status, message = (
                PipelineStatus.SUCCEEDED,
                f"scored {summary['rows']} rows from {summary['files']} file(s)",
            )
        except Exception as problem:
            log.exception("batch pipeline %s failed", pipeline_id)
            message = f"the batch job failed: {type(problem).__name__}"
        finally:
            self.registry.update(
                pipeline_id, status=status, message=message, only_if=PipelineStatus.IN_PROGRESS
            )
            with self._lock:
                self._batches.pop(pipeline_id, None)
            shutil.rmtree(prefix, ignore_errors=True)

    def _download(self, source: str, keys: list[str], folder: Path) -> None:
        bucket = parse_s3(source, "batch_inference_data").bucket
        folder.mkdir(parents=True, exist_ok=True)
        names = [PurePosixPath(key).name for key in keys]
        for number, (key, name) in enumerate(zip(keys, names, strict=True)):
            local_name = name if names.count(name) == 1 else f"{number:05d}-{name}"
            self._s3().download_file(bucket, key, str(folder / local_name))

    def _upload(self, folder: Path, output: str) -> None:
        target = parse_s3(output, "batch_job_output_location")
        for path in sorted(folder.glob("*.out")):
            key = "/".join(part for part in (target.key.strip("/"), path.name) if part)
            self._s3().upload_file(str(path), target.bucket, key)

    def refresh(self, pipeline: Pipeline) -> Outcome | None:
        """A batch job still InProgress that no thread of this process runs died with an earlier service."""
        if not pipeline.pipeline_type.startswith("byom_batch") or pipeline.pipeline_id in self._batches:
            return None
        current = self.registry.get(pipeline.pipeline_id)
        if current is None or current.status != PipelineStatus.IN_PROGRESS:
            return None
        return Outcome(
            PipelineStatus.FAILED, "the batch job ended with the service that ran it", current.details
        )

    def invoke(self, endpoint: Endpoint, payload: bytes, content_type: str) -> Prediction:
        url = endpoint.details["url"]
        try:
            answer = self._http.post(
                f"{url}/invocations",
                content=payload,
                headers={"Content-Type": content_type, "Accept": "application/json"},
            )
        except httpx.TransportError as problem:
            log.error("endpoint %s unreachable at %s: %s", endpoint.endpoint_name, url, problem)
            raise DeployError(502, f"endpoint {endpoint.endpoint_name} is unreachable") from problem
        body = (
            answer.json()
            if answer.headers.get("content-type", "").startswith("application/json")
            else answer.text
        )
        if answer.status_code == 200 and endpoint.data_capture_location:
            try:
                self.capture.record(
                    endpoint.endpoint_name, endpoint.data_capture_location, content_type, payload, body
                )
            except OSError:
                log.exception("capture of %s not written; the prediction is answered", endpoint.endpoint_name)
        return Prediction(answer.status_code, body)

    def delete(self, pipeline: Pipeline, endpoint: Endpoint | None) -> list[str]:
        removed: list[str] = []
        if endpoint is not None:
            with self._lock:
                process = self._processes.pop(endpoint.endpoint_name, None)
            if process is not None:
                _stop(process)
            else:
                stop_recorded(endpoint.details.get("pid"), endpoint.details.get("start_ticks"))
            self.capture.flush(endpoint.endpoint_name)
            self.registry.remove_endpoint(endpoint.endpoint_name)
            removed.append(f"endpoint {endpoint.endpoint_name}")
        if pipeline.pipeline_id in self._batches:
            with self._lock:
                process = self._batches.pop(pipeline.pipeline_id, None)
            if process is not None:
                _stop(process)
            removed.append("batch job")
        else:
            stop_recorded(pipeline.details.get("pid"), pipeline.details.get("start_ticks"))
        prefix = pipeline.details.get("prefix")
        if prefix and Path(prefix).exists():
            shutil.rmtree(prefix, ignore_errors=True)
            removed.append("model folder")
        return removed

    def start(self) -> None:
        """Stop what a killed predecessor left running, then start every local endpoint again."""
        for pipeline_id in self.registry.in_progress():
            pipeline = self.registry.get(pipeline_id)
            if pipeline is None or not pipeline.pipeline_type.startswith("byom_batch"):
                continue
            if stop_recorded(pipeline.details.get("pid"), pipeline.details.get("start_ticks")):
                log.warning("stopped the batch job of pipeline %s left by a previous service", pipeline_id)
            if pipeline.details.get("prefix"):
                shutil.rmtree(pipeline.details["prefix"], ignore_errors=True)
        for endpoint in self.registry.endpoints():
            if endpoint.target != self.name:
                continue
            if stop_recorded(endpoint.details.get("pid"), endpoint.details.get("start_ticks")):
                log.warning("stopped endpoint %s left running by a previous service", endpoint.endpoint_name)
            prefix = Path(endpoint.details.get("prefix", ""))
            if not (prefix / "model").is_dir():
                continue
            try:
                url, process, start_ticks = self._launch(endpoint.endpoint_name, prefix)
            except DeployError as problem:
                log.error("endpoint %s not restarted: %s", endpoint.endpoint_name, problem)
                continue
            with self._lock:
                self._processes[endpoint.endpoint_name] = process
            self.registry.put_endpoint(
                endpoint.endpoint_name,
                target=self.name,
                pipeline_id=endpoint.pipeline_id,
                details={**endpoint.details, "url": url, "pid": process.pid, "start_ticks": start_ticks},
                data_capture_location=endpoint.data_capture_location,
            )

    def close(self) -> None:
        self._closing = True
        with self._lock:
            processes = list(self._processes.values())
            batches = [process for process in self._batches.values() if process is not None]
            self._processes.clear()
        for process in processes + batches:
            _stop(process)
        self.capture.close()
        self._http.close()
