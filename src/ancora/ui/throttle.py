"""Bounds on password guessing at the app's sign-in form.

Each username (known or not, so the answer does not tell which exist) may fail ``max_failures`` times
in ``window_seconds``; then it is locked until its oldest failure leaves the window, and a locked
name is refused without checking the password, so a guess that happens to be right is refused too.
Argon2 verification is made expensive on purpose (tens of MB and of milliseconds per check), so at
most ``concurrent_checks`` run at once: a flood of sign-ins queues instead of exhausting memory.

Keyed by username rather than by client address: behind Docker's port publishing or a reverse proxy
every client has the same address, and Streamlit's own docs warn that its address can be spoofed.
The price is that anyone can lock a username for one window by failing on purpose; it unlocks by
itself. State is in memory, per app process, and bounded (``max_tracked`` names, the least recently
failed forgotten first).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class SignInThrottle:
    def __init__(
        self,
        max_failures: int,
        window_seconds: float,
        concurrent_checks: int = 2,
        max_tracked: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.max_tracked = max_tracked
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(concurrent_checks)

    def retry_after(self, username: str) -> float | None:
        """Seconds until ``username`` may try again, or None if it may now."""
        with self._lock:
            failures = self._recent(username)
            if len(failures) < self.max_failures:
                return None
            return max(failures[0] + self.window_seconds - self._clock(), 0.0)

    def failed(self, username: str) -> None:
        with self._lock:
            failures = self._recent(username)
            failures.append(self._clock())
            self._failures[username] = failures
            self._failures.move_to_end(username)
            while len(self._failures) > self.max_tracked:
                self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username, None)

    @contextmanager
    def checking(self) -> Iterator[None]:
        """Hold one of the few password-check slots."""
        with self._checks:
            yield

    def _recent(self, username: str) -> deque[float]:
        failures = self._failures.get(username, deque())
        horizon = self._clock() - self.window_seconds
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            self._failures.pop(username, None)
        return failures
