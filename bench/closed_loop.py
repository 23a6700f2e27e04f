"""Closed-loop load: each of `users` clients sends its next request as soon as the last answered, for a time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from clients.rerank_client import RerankClient
from clients.workload import WorkloadRequest


def closed_loop(url: str, pool: Sequence[WorkloadRequest], users: int, seconds: float,
                call: Callable[[RerankClient, WorkloadRequest], None], *, join_s: float | None = None) -> float:
    """Runs the users (user k takes requests k, k + users, ... of `pool`) until `seconds` have passed, each with a
    client of its own; `call(client, request)` sends one request and records what the caller needs (from several
    threads at once). Returns the seconds the run took, the last answers included."""
    stop = time.perf_counter() + seconds

    def user(k: int) -> None:
        with RerankClient(url, timeout_s=120) as client:
            i = k
            while time.perf_counter() < stop:
                call(client, pool[i % len(pool)])
                i += users

    started = time.perf_counter()
    threads = [threading.Thread(target=user, args=(k,), daemon=True) for k in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=join_s)
    return time.perf_counter() - started
