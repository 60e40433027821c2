"""Validation errors as the API reports them: bounded in size and always valid JSON.

An error item names what is wrong and shows a short preview of the value at fault, never the value
itself: echoing the input turned a 150 MB body into a 1.9 GB reply, and a float such as ``NaN`` or
an undecodable byte string made the JSON encoder fail (a 500 instead of a 422).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

PREVIEW_CHARS = 80
"""Longest text shown of one value in an error item."""

PREVIEW_ITEMS = 13
"""Most entries shown of a list or an object (a row has 13 columns with the label)."""

MESSAGE_CHARS = 1000
"""Longest message of one error item."""

MAX_REPORTED_ERRORS = 50
"""Error items in one answer; one more item says how many were left out."""

ELLIPSIS = "…"


def clip_text(text: str, limit: int = PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + ELLIPSIS


def preview(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, bounded stand-in for ``value``: short strings and numbers stay as they are, long
    ones are cut, non-finite floats and bytes become text, containers keep their first entries."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**18 else f"<a whole number of {value.bit_length()} bits>"
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, str):
        return clip_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return clip_text(bytes(value[: PREVIEW_CHARS * 4]).decode("utf-8", errors="replace"))
    if isinstance(value, BaseException):
        return clip_text(str(value), MESSAGE_CHARS)
    if isinstance(value, Mapping):
        if depth > 0:
            return "{" + ELLIPSIS + "}" if value else {}
        shown = {
            clip_text(str(key)): preview(item, depth + 1)
            for _, (key, item) in zip(range(PREVIEW_ITEMS), value.items(), strict=False)
        }
        if len(value) > PREVIEW_ITEMS:
            shown[ELLIPSIS] = f"{len(value) - PREVIEW_ITEMS} more"
        return shown
    if isinstance(value, list | tuple):
        if depth > 0:
            return "[" + ELLIPSIS + "]" if value else []
        items = [preview(item, depth + 1) for item in value[:PREVIEW_ITEMS]]
        if len(value) > PREVIEW_ITEMS:
            items.append(f"{ELLIPSIS} {len(value) - PREVIEW_ITEMS} more")
        return items
    return clip_text(f"<{type(value).__name__}>")


def short_repr(value: Any) -> str:
    """``repr`` of a value's preview, for messages such as "expected a whole number, got '12a…'"."""
    return repr(preview(value, depth=1))


def reported_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """FastAPI's error items (type, loc, msg, input, ctx), each bounded and JSON-safe, at most
    ``MAX_REPORTED_ERRORS`` of them plus one that counts the rest."""
    reported: list[dict[str, Any]] = []
    left_out = 0
    for error in errors:
        if len(reported) >= MAX_REPORTED_ERRORS:
            left_out += 1
            continue
        item: dict[str, Any] = {
            "type": clip_text(str(error.get("type", "value_error"))),
            "loc": [part if isinstance(part, int) else clip_text(str(part)) for part in error.get("loc", ())],
            "msg": clip_text(str(error.get("msg", "")), MESSAGE_CHARS),
            "input": preview(error.get("input")),
        }
        if isinstance(error.get("ctx"), Mapping):
            item["ctx"] = {clip_text(str(k)): preview(v, depth=1) for k, v in error["ctx"].items()}
        reported.append(item)
    if left_out:
        reported.append(
            {
                "type": "too_many_errors",
                "loc": ["body"],
                "msg": f"at least {left_out} more error(s) not shown (checking stops early); "
                f"the first {MAX_REPORTED_ERRORS} are above",
                "input": None,
            }
        )
    return reported
