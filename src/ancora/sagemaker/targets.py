"""Where BYOM pipelines deploy: ``local`` (serve processes on this machine) and ``sagemaker`` (boto3).

Both take a validated request and either finish the deploy or leave nothing behind: a failed local
start stops its process and deletes its folder; a failed SageMaker call deletes the model and
endpoint config it had created. An existing endpoint of the same name keeps serving until its
replacement is ready (local) or SageMaker switches it (UpdateEndpoint).
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from ancora.config import Settings
from ancora.sagemaker.aws import aws_client, split_s3_uri
from ancora.sagemaker.byom import ArtifactError, ProvisionRequest, check_allowed, extract_archive
from ancora.sagemaker.configs import (
    endpoint_config_config,
    model_config,
    sagemaker_name,
    timestamp_suffix,
    transform_job_config,
)
from ancora.sagemaker.registry import Endpoint, Pipeline, PipelineRegistry, PipelineStatus

log = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 10.0


class DeployError(Exception):
    """A provisioning or inference failure with the HTTP status the API answers."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class Outcome:
    status: PipelineStatus
    message: str
    details: dict[str, Any]


@dataclass(frozen=True)
class Prediction:
    status_code: int
    body: Any


class Target(Protocol):
    name: str

    def provision(self, request: ProvisionRequest, pipeline_id: str) -> Outcome: ...

    def refresh(self, pipeline: Pipeline) -> Outcome | None:
        """The pipeline's current state from the back end, or None when the registry's is final."""

    def invoke(self, endpoint: Endpoint, payload: bytes, content_type: str) -> Prediction: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, size: int = 2000) -> str:
    if not path.exists():
        return ""
    return path.read_bytes()[-size:].decode(errors="replace").strip()


class LocalTarget:
    """Unpacks ``model.tar.gz`` and runs the container's ``serve`` program natively, one process each.

    Endpoint processes are children of the provisioning service: stopped with it, and started again
    from their unpacked model when it starts (``start``), so a restart keeps every endpoint.
    """

    name = "local"

    def __init__(self, settings: Settings, registry: PipelineRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.root = settings.state_dir / "provisioning"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._batches: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=settings.byom_inference_timeout_seconds)

    def provision(self, request: ProvisionRequest, pipeline_id: str) -> Outcome:
        if request.pipeline_type.realtime:
            return self._deploy(request, pipeline_id)
        return self._start_batch(request, pipeline_id)

    def _fetch(self, location: str, workdir: Path) -> Path:
        """The archive as a local file: the path itself, or a download from S3 (size checked first)."""
        check_allowed(location, self.settings.resolved_byom_artifact_roots)
        if not location.startswith("s3://"):
            return Path(location)
        from botocore.exceptions import ClientError

        bucket, key = split_s3_uri(location)
        s3 = aws_client(self.settings, "s3")
        try:
            size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        except ClientError as problem:
            raise ArtifactError(f"model.tar.gz not found at {location}: {problem}") from problem
        if size > self.settings.byom_max_model_bytes:
            raise ArtifactError(
                f"{location} is {size} bytes; the limit is {self.settings.byom_max_model_bytes}"
            )
        target = workdir / "model.tar.gz"
        workdir.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
        return target

    def _unpack(self, location: str, prefix: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="byom-") as scratch:
            archive = self._fetch(location, Path(scratch))
            extract_archive(archive, prefix / "model", self.settings.byom_max_model_bytes)

    def _deploy(self, request: ProvisionRequest, pipeline_id: str) -> Outcome:
        endpoint = request.target_endpoint
        prefix = self.root / "endpoints" / endpoint / pipeline_id
        try:
            self._unpack(str(request.model_artifact_location), prefix)
            url, process = self._launch(endpoint, prefix)
        except BaseException:
            shutil.rmtree(prefix, ignore_errors=True)
            raise
        previous = self.registry.endpoint(endpoint)
        details = {"url": url, "pid": process.pid, "prefix": str(prefix)}
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
        if (
            previous is not None
            and previous.details.get("prefix")
            and previous.details["prefix"] != str(prefix)
        ):
            shutil.rmtree(previous.details["prefix"], ignore_errors=True)
        verb = "updated" if previous is not None else "created"
        return Outcome(PipelineStatus.SUCCEEDED, f"endpoint {endpoint} {verb}, serving at {url}", details)

    def _launch(self, endpoint: str, prefix: Path) -> tuple[str, subprocess.Popen[bytes]]:
        """Start ``serve`` on a free port and wait for ``/ping``; a model that does not load is a 422."""
        host = self.settings.bind_host
        port = free_port(host)
        log_path = prefix / "serve.log"
        argv = [sys.executable, "-m", "ancora.sagemaker.container", "serve"]
        argv += ["--prefix", str(prefix), "--host", host, "--port", str(port)]
        with log_path.open("ab") as output:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://{host}:{port}"
        deadline = time.monotonic() + self.settings.byom_start_timeout_seconds
        try:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise DeployError(
                        502, f"serve for {endpoint} exited with {process.returncode}: {_tail(log_path)}"
                    )
                try:
                    answer = self._http.get(f"{url}/ping", timeout=1.0)
                except httpx.TransportError:
                    time.sleep(0.1)
                    continue
                if answer.status_code == 200:
                    return url, process
                raise DeployError(422, f"the model of {endpoint} does not load: {answer.text.strip()}")
            raise DeployError(
                504, f"serve for {endpoint} not ready after {self.settings.byom_start_timeout_seconds:g} s"
            )
        except BaseException:
            _stop(process)
            raise

    def _start_batch(self, request: ProvisionRequest, pipeline_id: str) -> Outcome:
        source = str(request.batch_inference_data)
        output = str(request.batch_job_output_location)
        if source.startswith("s3://") or output.startswith("s3://"):
            raise ArtifactError(
                "the local target reads and writes local paths in batch jobs; use the sagemaker target for S3"
            )
        source_path = Path(source)
        if not (source_path.is_file() or (source_path.is_dir() and any(source_path.glob("*.csv")))):
            raise ArtifactError(f"batch_inference_data {source!r} is neither a CSV file nor a folder of CSVs")
        prefix = self.root / "batch" / pipeline_id
        try:
            self._unpack(str(request.model_artifact_location), prefix)
        except BaseException:
            shutil.rmtree(prefix, ignore_errors=True)
            raise
        argv = [sys.executable, "-m", "ancora.sagemaker.container", "batch"]
        argv += ["--prefix", str(prefix), "--input", source, "--output", output]
        thread = threading.Thread(target=self._run_batch, args=(pipeline_id, argv, prefix), daemon=True)
        self._batches[pipeline_id] = thread
        thread.start()
        return Outcome(PipelineStatus.IN_PROGRESS, f"batch job scoring {source}", {"prefix": str(prefix)})

    def _run_batch(self, pipeline_id: str, argv: list[str], prefix: Path) -> None:
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=6 * 3600, check=False)
            if result.returncode == 0:
                summary = json.loads(result.stdout.strip().splitlines()[-1])
                message = f"scored {summary['rows']} rows from {summary['files']} file(s)"
                self.registry.update(pipeline_id, status=PipelineStatus.SUCCEEDED, message=message)
            else:
                failure = result.stderr.strip()[-2000:]
                self.registry.update(pipeline_id, status=PipelineStatus.FAILED, message=failure)
        except subprocess.TimeoutExpired:
            self.registry.update(pipeline_id, status=PipelineStatus.FAILED, message="batch job timed out")
        finally:
            shutil.rmtree(prefix, ignore_errors=True)
            self._batches.pop(pipeline_id, None)

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
            raise DeployError(502, f"endpoint {endpoint.endpoint_name} unreachable: {problem}") from problem
        body = (
            answer.json()
            if answer.headers.get("content-type", "").startswith("application/json")
            else answer.text
        )
        if answer.status_code == 200:
            self._capture(endpoint, payload, content_type, body)
        return Prediction(answer.status_code, body)

    def _capture(self, endpoint: Endpoint, payload: bytes, content_type: str, body: Any) -> None:
        """Append request and answer to a JSON-lines file, like SageMaker's data capture (paths only)."""
        location = endpoint.data_capture_location
        if not location or location.startswith("s3://"):
            return
        now = datetime.now(UTC)
        folder = Path(location) / endpoint.endpoint_name / now.strftime("%Y/%m/%d")
        folder.mkdir(parents=True, exist_ok=True)
        record = {
            "time": now.isoformat(),
            "content_type": content_type,
            "input": payload.decode(errors="replace"),
            "output": body,
        }
        with (folder / "capture.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def start(self) -> None:
        """Start every local endpoint the registry knows, from its unpacked model."""
        for endpoint in self.registry.endpoints():
            prefix = Path(endpoint.details.get("prefix", ""))
            if endpoint.target != self.name or not (prefix / "model").is_dir():
                continue
            try:
                url, process = self._launch(endpoint.endpoint_name, prefix)
            except DeployError as problem:
                log.error("endpoint %s not restarted: %s", endpoint.endpoint_name, problem)
                continue
            with self._lock:
                self._processes[endpoint.endpoint_name] = process
            self.registry.put_endpoint(
                endpoint.endpoint_name,
                target=self.name,
                pipeline_id=endpoint.pipeline_id,
                details={**endpoint.details, "url": url, "pid": process.pid},
                data_capture_location=endpoint.data_capture_location,
            )

    def close(self) -> None:
        with self._lock:
            processes = list(self._processes.values())
            self._processes.clear()
        for process in processes:
            _stop(process)
        self._http.close()


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


ENDPOINT_STATES = {
    "InService": PipelineStatus.SUCCEEDED,
    "Failed": PipelineStatus.FAILED,
    "OutOfService": PipelineStatus.FAILED,
}
JOB_STATES = {
    "Completed": PipelineStatus.SUCCEEDED,
    "Failed": PipelineStatus.FAILED,
    "Stopped": PipelineStatus.FAILED,
}


class SageMakerTarget:
    """Creates the model, endpoint config and endpoint (or transform job) in SageMaker through boto3."""

    name = "sagemaker"

    def __init__(self, settings: Settings, registry: PipelineRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.sagemaker = aws_client(settings, "sagemaker")
        self.runtime = aws_client(settings, "sagemaker-runtime")
        self.s3 = aws_client(settings, "s3")

    def _check_s3(self, location: str, what: str) -> None:
        from botocore.exceptions import ClientError

        if not location.startswith("s3://"):
            raise ArtifactError(f"{what} {location!r}: the sagemaker target needs an s3:// location")
        bucket, key = split_s3_uri(location)
        try:
            if key and not key.endswith("/"):
                self.s3.head_object(Bucket=bucket, Key=key)
            else:
                self.s3.head_bucket(Bucket=bucket)
        except ClientError as problem:
            raise ArtifactError(f"{what} {location!r} not found: {problem}") from problem

    def provision(self, request: ProvisionRequest, pipeline_id: str) -> Outcome:
        from botocore.exceptions import ClientError

        location = str(request.model_artifact_location)
        check_allowed(location, self.settings.resolved_byom_artifact_roots)
        self._check_s3(location, "model_artifact_location")
        if not request.pipeline_type.realtime:
            self._check_s3(str(request.batch_inference_data), "batch_inference_data")
            if not str(request.batch_job_output_location).startswith("s3://"):
                raise ArtifactError("batch_job_output_location: the sagemaker target needs an s3:// location")
        suffix = f"{timestamp_suffix()}-{pipeline_id[:8]}"
        model_name = sagemaker_name(str(request.model_name), suffix)
        image = request.custom_image_uri if not request.pipeline_type.builtin else None
        created: list[tuple[str, dict[str, str]]] = []
        try:
            self.sagemaker.create_model(
                **model_config(self.settings, model_name=model_name, model_data_url=location, image_uri=image)
            )
            created.append(("delete_model", {"ModelName": model_name}))
            if request.pipeline_type.realtime:
                return self._endpoint(request, pipeline_id, model_name, suffix, created)
            job_name = sagemaker_name(str(request.model_name), "batch", suffix)
            self.sagemaker.create_transform_job(
                **transform_job_config(
                    job_name=job_name,
                    model_name=model_name,
                    input_uri=str(request.batch_inference_data),
                    output_uri=str(request.batch_job_output_location),
                    instance_type=str(request.inference_instance),
                )
            )
            details = {"model": model_name, "transform_job": job_name}
            return Outcome(PipelineStatus.IN_PROGRESS, f"transform job {job_name} started", details)
        except ClientError as problem:
            for method, arguments in reversed(created):
                try:
                    getattr(self.sagemaker, method)(**arguments)
                except ClientError:
                    log.exception("could not undo %s(%s)", method, arguments)
            raise DeployError(502, f"SageMaker refused the deploy: {problem}") from problem

    def _endpoint(
        self,
        request: ProvisionRequest,
        pipeline_id: str,
        model_name: str,
        suffix: str,
        created: list[tuple[str, dict[str, str]]],
    ) -> Outcome:
        from botocore.exceptions import ClientError

        endpoint = request.target_endpoint
        config_name = sagemaker_name(endpoint, suffix)
        self.sagemaker.create_endpoint_config(
            **endpoint_config_config(
                config_name=config_name,
                model_name=model_name,
                instance_type=str(request.inference_instance),
                data_capture_uri=request.data_capture_location
                if str(request.data_capture_location).startswith("s3://")
                else None,
            )
        )
        created.append(("delete_endpoint_config", {"EndpointConfigName": config_name}))
        try:
            self.sagemaker.describe_endpoint(EndpointName=endpoint)
            exists = True
        except ClientError:
            exists = False
        if exists:
            self.sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)
        else:
            self.sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)
        self.registry.put_endpoint(
            endpoint,
            target=self.name,
            pipeline_id=pipeline_id,
            details={"model": model_name, "endpoint_config": config_name},
            data_capture_location=request.data_capture_location,
        )
        details = {"model": model_name, "endpoint_config": config_name}
        verb = "updating" if exists else "creating"
        return Outcome(PipelineStatus.IN_PROGRESS, f"endpoint {endpoint} {verb}", details)

    def refresh(self, pipeline: Pipeline) -> Outcome | None:
        from botocore.exceptions import ClientError

        if pipeline.status != PipelineStatus.IN_PROGRESS:
            return None
        try:
            if "transform_job" in pipeline.details:
                described = self.sagemaker.describe_transform_job(
                    TransformJobName=pipeline.details["transform_job"]
                )
                state = described["TransformJobStatus"]
                status = JOB_STATES.get(state, PipelineStatus.IN_PROGRESS)
            else:
                described = self.sagemaker.describe_endpoint(EndpointName=pipeline.endpoint_name)
                state = described["EndpointStatus"]
                status = ENDPOINT_STATES.get(state, PipelineStatus.IN_PROGRESS)
        except ClientError as problem:
            return Outcome(PipelineStatus.FAILED, f"SageMaker lost track of it: {problem}", pipeline.details)
        message = f"{state}: {described['FailureReason']}" if described.get("FailureReason") else state
        return Outcome(status, message, pipeline.details)

    def invoke(self, endpoint: Endpoint, payload: bytes, content_type: str) -> Prediction:
        from botocore.exceptions import ClientError

        try:
            answer = self.runtime.invoke_endpoint(
                EndpointName=endpoint.endpoint_name,
                ContentType=content_type,
                Accept="application/json",
                Body=payload,
            )
        except ClientError as problem:
            error = problem.response.get("Error", {})
            status = int(problem.response.get("OriginalStatusCode") or 502)
            return Prediction(status, {"error": error.get("Message", str(problem))})
        text = answer["Body"].read().decode()
        try:
            return Prediction(200, json.loads(text))
        except json.JSONDecodeError:
            return Prediction(200, text)

    def start(self) -> None:
        """Nothing to restart: SageMaker keeps its endpoints."""

    def close(self) -> None:
        """boto3 clients hold no resources worth releasing."""


def build_target(settings: Settings, registry: PipelineRegistry) -> Target:
    if settings.byom_target == "sagemaker":
        return SageMakerTarget(settings, registry)
    return LocalTarget(settings, registry)
