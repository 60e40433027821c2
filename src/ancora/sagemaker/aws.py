"""boto3 clients configured from the settings: region and, for moto or a VPC endpoint, the endpoint URL."""

from __future__ import annotations

from typing import Any

from ancora.config import Settings


def aws_client(settings: Settings, service: str) -> Any:
    """A client for ``service``; credentials come from boto3's usual chain (never from the settings)."""
    import boto3

    return boto3.client(service, region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` to ``(bucket, key)``."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    return bucket, key
