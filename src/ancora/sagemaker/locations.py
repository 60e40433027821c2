"""Where a BYOM request may read and write, and how the orchestrator's short locations are read.

The AWS MLOps Workload Orchestrator reads ``model_artifact_location`` relative to its assets bucket
(``"model.tar.gz"``) and the other locations as ``bucket/prefix`` without a scheme
(``"my-bucket/data"``). Ancora reads them the same way, then allows only locations under the
operator's roots: the archive's pickle runs code when loaded (``ANCORA_BYOM_ARTIFACT_ROOTS``), and a
batch job reads and writes files with the service's rights (``ANCORA_BYOM_DATA_ROOTS``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ancora.config import Settings
    from ancora.sagemaker.byom import ProvisionRequest

S3_SCHEME = "s3://"
BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
"""S3's bucket naming rule (3-63 lowercase letters, digits, '.' and '-')."""


class LocationError(ValueError):
    """A location the request may not name, or cannot be read; a client error (422)."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.key}"


def parse_s3(uri: str, field: str) -> S3Location:
    """``s3://bucket/key`` (key may be empty), with the bucket name checked."""
    bucket, _, key = uri.removeprefix(S3_SCHEME).partition("/")
    if not BUCKET_PATTERN.fullmatch(bucket):
        raise LocationError(f"{field} {uri!r}: {bucket!r} is not a valid S3 bucket name")
    return S3Location(bucket, key)


def is_s3(location: str) -> bool:
    return location.startswith(S3_SCHEME)


def resolve_artifact_location(location: str, assets_root: str) -> str:
    """``s3://...`` and absolute paths as given; anything else relative to the assets root."""
    if is_s3(location) or Path(location).is_absolute():
        return location
    if is_s3(assets_root):
        return assets_root.rstrip("/") + "/" + location.lstrip("/")
    return str(Path(assets_root) / location)


def resolve_data_location(location: str, field: str) -> str:
    """``s3://...`` and absolute paths as given; ``bucket/prefix`` without a scheme is S3."""
    if is_s3(location) or Path(location).is_absolute():
        return location
    uri = S3_SCHEME + location
    parse_s3(uri, field)
    return uri


def _under_s3_root(location: S3Location, root: S3Location) -> bool:
    if location.bucket != root.bucket:
        return False
    prefix = root.key.strip("/")
    if not prefix:
        return True
    parts = PurePosixPath(location.key).parts
    return parts[: len(PurePosixPath(prefix).parts)] == PurePosixPath(prefix).parts


def check_under_roots(location: str, roots: list[str], field: str, variable: str, shown: str) -> None:
    """Refuse a location outside every root: S3 by bucket and whole key segments, paths once resolved
    (so ``..`` and symbolic links cannot step out). The message shows the caller's own value and names
    the variable, never the roots: status readers must not learn the server's folders."""
    if is_s3(location):
        parsed = parse_s3(location, field)
        allowed = any(_under_s3_root(parsed, parse_s3(root, variable)) for root in roots if is_s3(root))
    else:
        path = Path(location).resolve()
        allowed = any(not is_s3(root) and path.is_relative_to(Path(root).resolve()) for root in roots)
    if not allowed:
        raise LocationError(f"{field} {shown!r} is outside the allowed roots ({variable})")


DATA_FIELDS = ("data_capture_location", "batch_inference_data", "batch_job_output_location")


def resolve_locations(request: ProvisionRequest, settings: Settings) -> ProvisionRequest:
    """The request with every location made absolute and checked against its roots (or LocationError)."""
    changes: dict[str, str] = {}
    artifact = request.model_artifact_location
    if artifact:
        resolved = resolve_artifact_location(artifact, settings.byom_assets_root)
        check_under_roots(
            resolved,
            settings.byom_artifact_roots,
            "model_artifact_location",
            "ANCORA_BYOM_ARTIFACT_ROOTS",
            shown=artifact,
        )
        changes["model_artifact_location"] = resolved
    for field in DATA_FIELDS:
        value = getattr(request, field)
        if not value:
            continue
        resolved = resolve_data_location(value, field)
        check_under_roots(resolved, settings.byom_data_roots, field, "ANCORA_BYOM_DATA_ROOTS", shown=value)
        changes[field] = resolved
    return request.with_locations(changes)
