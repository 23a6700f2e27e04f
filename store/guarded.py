"""A store whose failures cost a request little: every call is bounded by the store's own timeout, and after a
failure the store is bypassed for `retry_after_s` (then tried again, so it comes back without a restart).
Calls, failures, bypasses and time are counted for the metrics endpoint."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TypeVar

from store.base import Store, StoreError

T = TypeVar("T")


class GuardedStore:
    def __init__(self, store: Store, *, retry_after_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.retry_after_s = retry_after_s
        self.clock = clock
        self._closed_until = 0.0
        self._lock = threading.Lock()  # writes may go out from a thread of their own
        self.last_error = ""
        self.calls: Counter[tuple[str, str]] = Counter()
        """(get | set, ok | error | bypassed) -> calls."""
        self.seconds: Counter[str] = Counter()
        """get | set -> seconds spent in calls that reached the store."""

    def get_many(self, keys: Sequence[str]) -> list[bytes | None] | None:
        """The values, or None when the store failed or is bypassed: the caller computes instead."""
        return self._call("get", lambda: self.store.get_many(keys)) if keys else []

    def set_many(self, items: Sequence[tuple[str, bytes, float | None]]) -> bool:
        """Whether the write reached the store."""
        return bool(items) and self._call("set", lambda: self.store.set_many(items) or True) is not None

    def _call(self, op: str, call: Callable[[], T]) -> T | None:
        if self.clock() < self._closed_until:
            self._count(op, "bypassed", None)
            return None
        started = time.perf_counter()
        try:
            result = call()
        except StoreError as error:
            with self._lock:
                self.last_error = str(error)[:200]
                self._closed_until = self.clock() + self.retry_after_s
            self._count(op, "error", started)
            return None
        self._count(op, "ok", started)
        return result

    def _count(self, op: str, result: str, started: float | None) -> None:
        """`started`: when the call went out (None: it never reached the store)."""
        with self._lock:
            self.calls[op, result] += 1
            if started is not None:
                self.seconds[op] += time.perf_counter() - started
