"""Credentials out of what Ancora prints: URLs keep their shape, passwords become ``***``.

``SecretStr`` settings already print as stars; database, MLflow and datalake URLs are plain strings
and carry their passwords (``mysql+pymysql://ancora:s3cret@db/ancora``), as query parameters too
(``?password=``, an ODBC string's ``PWD=``).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

MASK = "***"
SENSITIVE_NAME = re.compile(r"pass|pwd|secret|token|key|credential|signature|auth", re.IGNORECASE)
EMBEDDED_SECRET = re.compile(r"(?i)\b(pwd|password|secret|token)=([^;&]*)")
"""``PWD=...`` inside a parameter's value, as in SQL Server's ``odbc_connect`` strings."""


def mask_url(value: str) -> str:
    """``value`` with a URL's password and credential-like query parameters masked; other text as is."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if not parts.scheme or not (parts.netloc or parts.query):
        return value
    result = value
    if "@" in parts.netloc:
        userinfo, _, host = parts.netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        if colon:
            result = result.replace(f"//{parts.netloc}", f"//{user}:{MASK}@{host}", 1)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        hidden = [
            (name, MASK if SENSITIVE_NAME.search(name) else EMBEDDED_SECRET.sub(rf"\1={MASK}", item))
            for name, item in pairs
        ]
        if hidden != pairs:
            result = result.replace(f"?{parts.query}", f"?{urlencode(hidden, safe='*')}", 1)
    return result


def masked(value: Any) -> Any:
    """A JSON-like value with every string that is a URL masked (``mask_url``), recursively."""
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value
