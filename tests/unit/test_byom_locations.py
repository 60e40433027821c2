"""How BYOM requests' locations are read (the orchestrator's way) and kept inside the operator's roots."""

from __future__ import annotations

from pathlib import Path

import pytest

from ancora.config import Settings
from ancora.sagemaker.byom import ProvisionRequest
from ancora.sagemaker.locations import (
    LocationError,
    check_under_roots,
    resolve_artifact_location,
    resolve_data_location,
    resolve_locations,
)


def test_a_relative_artifact_is_read_from_the_assets_root() -> None:
    assert resolve_artifact_location("model.tar.gz", "s3://assets/") == "s3://assets/model.tar.gz"
    assert resolve_artifact_location("m/model.tar.gz", "s3://assets/p") == "s3://assets/p/m/model.tar.gz"
    assert resolve_artifact_location("model.tar.gz", "/srv/artifacts") == "/srv/artifacts/model.tar.gz"
    assert resolve_artifact_location("s3://other/model.tar.gz", "/srv") == "s3://other/model.tar.gz"
    assert resolve_artifact_location("/abs/model.tar.gz", "s3://assets/") == "/abs/model.tar.gz"


def test_a_location_without_scheme_is_bucket_and_prefix() -> None:
    assert resolve_data_location("my-bucket/data", "data_capture_location") == "s3://my-bucket/data"
    assert resolve_data_location("my-bucket", "data_capture_location") == "s3://my-bucket"
    assert resolve_data_location("/srv/capture", "data_capture_location") == "/srv/capture"
    for bad in ("My_Bucket/data", "./data", "../etc", "a/x"):
        with pytest.raises(LocationError, match="is not a valid S3 bucket name"):
            resolve_data_location(bad, "data_capture_location")


@pytest.mark.parametrize(
    ("location", "allowed"),
    [
        ("s3://assets/model.tar.gz", True),
        ("s3://assets/team/model.tar.gz", True),
        ("s3://assets-evil/model.tar.gz", False),
        ("s3://data/models/a/m.tar.gz", True),
        ("s3://data/models-b/m.tar.gz", False),
        ("s3://data/m.tar.gz", False),
    ],
)
def test_s3_roots_match_whole_buckets_and_key_segments(location: str, allowed: bool) -> None:
    roots = ["s3://assets/", "s3://data/models"]
    if allowed:
        check_under_roots(location, roots, "model_artifact_location", "ROOTS", shown=location)
    else:
        with pytest.raises(LocationError, match=r"outside the allowed roots \(ROOTS\)"):
            check_under_roots(location, roots, "model_artifact_location", "ROOTS", shown=location)


def test_paths_are_checked_once_resolved(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    check_under_roots(str(root / "a" / "b.csv"), [str(root)], "f", "V", shown="x")
    for escape in (root / ".." / "secret", root / "link" / "secret", Path("/etc/passwd")):
        with pytest.raises(LocationError, match="'given' is outside"):
            check_under_roots(str(escape), [str(root)], "f", "V", shown="given")


def test_a_request_keeps_the_callers_words_for_its_messages(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, byom_target="sagemaker", sagemaker_bucket="assets")
    request = ProvisionRequest.model_validate(
        {
            "pipeline_type": "byom_batch_custom",
            "model_name": "pulsar",
            "model_artifact_location": "model.tar.gz",
            "custom_image_uri": "x",
            "inference_instance": "ml.m5.large",
            "batch_inference_data": "assets/in/data.csv",
            "batch_job_output_location": "assets/out",
        }
    )
    resolved = resolve_locations(request, settings)
    assert resolved.model_artifact_location == "s3://assets/model.tar.gz"
    assert resolved.batch_inference_data == "s3://assets/in/data.csv"
    assert resolved.batch_job_output_location == "s3://assets/out"
    assert resolved.shown_artifact == "model.tar.gz"
    assert resolved.shown("batch_job_output_location") == "assets/out"
    outside = request.model_copy(update={"batch_job_output_location": "elsewhere/out"})
    with pytest.raises(LocationError, match="batch_job_output_location 'elsewhere/out' is outside"):
        resolve_locations(outside, settings)
