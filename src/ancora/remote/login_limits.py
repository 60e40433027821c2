"""Failed-login limits of the task service: per username and per client address.

After ``max_failures`` failed logins of one username (or ``max_failures_per_address`` from one
address) within the window, further logins of that username (or from that address) are refused,
right or wrong, until the oldest failure leaves the window; the caller answers 429 with Retry-After.
Refusing a correct password too is the point: otherwise a guesser learns the password from the one
answer that differs.

Kept in memory: the task service is one process. The number of tracked keys is bounded, so a flood
of random usernames cannot grow it without end (the oldest keys are dropped first).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_TRACKED_KEYS = 10_000


class TooManyFailures(Exception):
    def __init__(self, retry_after_seconds: int, reason: str) -> None:
        super().__init__(reason)
        self.retry_after_seconds = retry_after_seconds


@dataclass
class LoginLimits:
    max_failures: int
    max_failures_per_address: int
    window_seconds: float
    clock: Callable[[], float] = time.monotonic
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, username: str, address: str) -> None:
        """TooManyFailures when the username or the address is over its limit."""
        with self._lock:
            now = self.clock()
            for key, limit, what in (
                (f"user:{username}", self.max_failures, f"user {username!r}"),
                (f"addr:{address}", self.max_failures_per_address, f"address {address}"),
            ):
                recent = self._recent(key, now)
                if len(recent) >= limit:
                    wait = recent[len(recent) - limit] + self.window_seconds - now
                    raise TooManyFailures(
                        max(1, math.ceil(wait)), f"too many failed logins for {what}; try again later"
                    )

    def failed(self, username: str, address: str) -> None:
        with self._lock:
            now = self.clock()
            for key in (f"user:{username}", f"addr:{address}"):
                self._recent(key, now).append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > MAX_TRACKED_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        """A correct password clears the username's failures (not the address's)."""
        with self._lock:
            self._failures.pop(f"user:{username}", None)

    def _recent(self, key: str, now: float) -> deque[float]:
        recent = self._failures.setdefault(key, deque())
        while recent and recent[0] <= now - self.window_seconds:
            recent.popleft()
        return recent
