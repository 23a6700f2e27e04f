"""When the BLS publishes its own counters (cover-cache lookups, in-BLS step times) to Triton's metrics.

Each counter update is a call from the stub to the server, and a request changes about a dozen of them:
published at most once per `METRICS_FLUSH_S`, that cost leaves the request path and the counters are at most
that stale. Triton's own statistics are not delayed. Imports nothing from Triton, so benchmarks read the
interval here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

METRICS_FLUSH_S = 0.5
"""Longest delay between a request and its counters on the metrics endpoint (Prometheus scrapes every 15 s
or so by default)."""


class DeferredPublish:
    """Runs `publish` on the running event loop `interval` seconds after the first change since the last run.

    The Python backend runs the loop of an async model in a thread of its own for the stub's life, so a
    change is published even when no request follows it."""

    def __init__(self, publish: Callable[[], None], interval: float = METRICS_FLUSH_S) -> None:
        self.publish = publish
        self.interval = interval
        self._pending: asyncio.TimerHandle | None = None

    def changed(self) -> None:
        """Call on the loop after a change (a request served)."""
        if self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(self.interval, self._run)

    def _run(self) -> None:
        self._pending = None
        self.publish()
