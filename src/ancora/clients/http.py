"""What every client of an Ancora-facing HTTP service shares: one pooled connection, closed by `with`."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import httpx


class ServiceClient:
    """An httpx client bound to one service's base URL; subclasses add the service's calls."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
