"""BYOM pipeline requests shaped like the AWS MLOps Workload Orchestrator's, and model artifact checks.

The orchestrator's ``/provisionpipeline`` body is kept key for key, so its users can point their
scripts at Ancora; each ``pipeline_type`` requires the keys it required there. ``model.tar.gz`` is
checked before anything is unpacked: its pickle will be loaded, so it must come from a location the
operator configured (``ANCORA_BYOM_ARTIFACT_ROOTS``, see ``locations``) and be a plain, bounded archive.
"""

from __future__ import annotations

import tarfile
from enum import StrEnum
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ancora.sagemaker.configs import NAME_PATTERN
from ancora.sagemaker.locations import LocationError

MAX_ARCHIVE_MEMBERS = 1000
MAX_LOCATION_LENGTH = 1024


class PipelineType(StrEnum):
    REALTIME_BUILTIN = "byom_realtime_builtin"
    REALTIME_CUSTOM = "byom_realtime_custom"
    BATCH_BUILTIN = "byom_batch_builtin"
    BATCH_CUSTOM = "byom_batch_custom"

    @property
    def realtime(self) -> bool:
        return self.value.startswith("byom_realtime")

    @property
    def builtin(self) -> bool:
        return self.value.endswith("_builtin")


_REALTIME = ("model_name", "model_artifact_location", "inference_instance", "data_capture_location")
_BATCH = (
    "model_name",
    "model_artifact_location",
    "inference_instance",
    "batch_inference_data",
    "batch_job_output_location",
)
_BUILTIN = ("model_framework", "model_framework_version")
REQUIRED_KEYS: dict[PipelineType, tuple[str, ...]] = {
    PipelineType.REALTIME_BUILTIN: _REALTIME + _BUILTIN,
    PipelineType.REALTIME_CUSTOM: (*_REALTIME, "custom_image_uri"),
    PipelineType.BATCH_BUILTIN: _BATCH + _BUILTIN,
    PipelineType.BATCH_CUSTOM: (*_BATCH, "custom_image_uri"),
}
"""The orchestrator's required keys per pipeline type (``endpoint_name`` is optional everywhere)."""

BUILTIN_FRAMEWORKS = frozenset({"sklearn", "scikit-learn"})


class ProvisionRequest(BaseModel):
    """The body of ``POST /provisionpipeline``; unknown keys are refused so a typo is never ignored."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    _given: dict[str, str] = PrivateAttr(default_factory=dict)

    pipeline_type: PipelineType
    model_name: str | None = Field(
        default=None, max_length=63, description="Name of the model (SageMaker name rules)."
    )
    model_artifact_location: str | None = Field(
        default=None,
        max_length=MAX_LOCATION_LENGTH,
        description="model.tar.gz: relative to the assets root (ANCORA_BYOM_ASSETS_ROOT), a path or s3://.",
    )
    custom_image_uri: str | None = Field(
        default=None, max_length=MAX_LOCATION_LENGTH, description="Image serving the model (custom types)."
    )
    model_framework: str | None = Field(default=None, max_length=64, description="Built-in types: sklearn.")
    model_framework_version: str | None = Field(
        default=None, max_length=64, description="Built-in types: recorded."
    )
    inference_instance: str | None = Field(
        default=None, max_length=64, description="SageMaker instance type, e.g. ml.m5.large."
    )
    data_capture_location: str | None = Field(
        default=None,
        max_length=MAX_LOCATION_LENGTH,
        description="Where a real-time endpoint's requests and predictions are captured: bucket/prefix "
        "(s3://), or a folder, under ANCORA_BYOM_DATA_ROOTS.",
    )
    endpoint_name: str | None = Field(
        default=None,
        max_length=63,
        description="Real-time endpoint; default: model_name. Provisioning it again updates it.",
    )
    batch_inference_data: str | None = Field(
        default=None,
        max_length=MAX_LOCATION_LENGTH,
        description="CSV (or folder/prefix of CSVs) to score: bucket/key (s3://) or a path, under "
        "ANCORA_BYOM_DATA_ROOTS.",
    )
    batch_job_output_location: str | None = Field(
        default=None,
        max_length=MAX_LOCATION_LENGTH,
        description="Where batch predictions go: bucket/prefix (s3://) or a folder, under "
        "ANCORA_BYOM_DATA_ROOTS.",
    )

    @field_validator("model_name", "endpoint_name")
    @classmethod
    def _sagemaker_name(cls, value: str | None) -> str | None:
        if value is not None and not NAME_PATTERN.fullmatch(value):
            raise ValueError("must be 1-63 letters, digits and '-', starting with a letter or digit")
        return value

    @model_validator(mode="after")
    def _required_for_type(self) -> ProvisionRequest:
        missing = [key for key in REQUIRED_KEYS[self.pipeline_type] if not getattr(self, key)]
        if missing:
            raise ValueError(f"{self.pipeline_type.value} requires {', '.join(missing)}")
        framework = (self.model_framework or "").lower()
        if self.pipeline_type.builtin and framework not in BUILTIN_FRAMEWORKS:
            raise ValueError(
                f"model_framework {self.model_framework!r}: the built-in image serves sklearn models only"
            )
        return self

    @property
    def target_endpoint(self) -> str:
        """The real-time endpoint this request deploys to."""
        return self.endpoint_name or str(self.model_name)

    def shown(self, field: str) -> str:
        """A location as the caller wrote it, before it was resolved: what messages may repeat."""
        return self._given.get(field) or str(getattr(self, field))

    @property
    def shown_artifact(self) -> str:
        return self.shown("model_artifact_location")

    def with_locations(self, resolved: dict[str, str]) -> ProvisionRequest:
        """A copy with resolved locations that still remembers the caller's own values."""
        copy = self.model_copy(update=resolved)
        copy._given = {field: str(getattr(self, field)) for field in resolved}
        return copy


class ArtifactError(LocationError):
    """model.tar.gz is missing or not a safe archive; a client error like any refused location."""


def check_archive(path: Path, max_bytes: int, shown: str) -> list[str]:
    """Open ``path`` as a gzip tar and check every member; returns the ``.pkl`` member names.

    Only regular files and folders, relative names without ``..``, at most ``max_bytes`` packed and
    unpacked, exactly one ``.pkl`` (the model the ``serve`` program loads). Messages call the archive
    ``shown`` (the caller's own location), never the server path it was read from.
    """
    if not path.is_file():
        raise ArtifactError(f"model_artifact_location {shown!r}: model.tar.gz not found")
    if path.stat().st_size > max_bytes:
        raise ArtifactError(f"{shown} is {path.stat().st_size} bytes; the limit is {max_bytes}")
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            members = archive.getmembers()
    except (tarfile.TarError, OSError, EOFError) as problem:
        raise ArtifactError(f"{shown} is not a readable gzip tar archive: {problem}") from problem
    if len(members) > MAX_ARCHIVE_MEMBERS:
        raise ArtifactError(f"{shown} holds {len(members)} entries; at most {MAX_ARCHIVE_MEMBERS}")
    total = 0
    models: list[str] = []
    for member in members:
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts:
            raise ArtifactError(f"{shown}: entry {member.name!r} escapes the model folder")
        if not (member.isfile() or member.isdir()):
            raise ArtifactError(f"{shown}: entry {member.name!r} is not a regular file or folder")
        total += member.size
        if member.isfile() and name.suffix == ".pkl":
            models.append(member.name)
    if total > max_bytes:
        raise ArtifactError(f"{shown} unpacks to {total} bytes; the limit is {max_bytes}")
    if len(models) != 1 or len(PurePosixPath(models[0]).parts) != 1:
        raise ArtifactError(
            f"{shown} must hold exactly one .pkl at its top level (tar czf model.tar.gz model.pkl); "
            f"found {models}"
        )
    return models


def extract_archive(path: Path, destination: Path, max_bytes: int, shown: str) -> Path:
    """Check, then unpack into ``destination`` (Python's ``data`` filter as a second guard)."""
    check_archive(path, max_bytes, shown)
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode="r:gz") as archive:
        archive.extractall(destination, filter="data")
    return destination
