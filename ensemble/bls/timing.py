"""Where the BLS and the Python entries time their work: in-process steps, and every engine call they make.

An engine call is timed by the `EngineCaller` it goes through (`TimedEngines`), not by each place that calls
one: the cover batches, the re-rank, the pointwise grader's pairs and the entries' own calls all pass through
it, so the engine-latency metrics see all of that traffic.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from ensemble import names
from ensemble.arrays import Arrays
from ensemble.bls.caller import EngineCaller, SubCallError


class StepTimes:
    """Running totals per step, named as the step models are, and per engine call as the caller waits for it
    (`names.engine_call_step`: the slot's queue and compute plus the hand-off). Exported as Triton metrics
    (`names.Metric.STEP_SECONDS`, `names.Metric.STEP_CALLS`, `names.Metric.ENGINE_CALL_SECONDS`)."""

    MAX_PENDING = 10_000
    """Engine-call durations kept for the latency histogram until published (older ones dropped past this)."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.engine_seconds: list[tuple[str, float]] = []
        """(engine, seconds) of each engine call since the last `take_engine_seconds`."""

    def take_engine_seconds(self) -> list[tuple[str, float]]:
        taken, self.engine_seconds = self.engine_seconds, []
        return taken

    @contextmanager
    def engine_call(self, engine: str) -> Iterator[None]:
        """An engine call as the caller waits for it: a step total, and one observation of its latency."""
        started = time.perf_counter()
        with self(names.engine_call_step(engine)):
            yield
        if len(self.engine_seconds) < self.MAX_PENDING:
            self.engine_seconds.append((engine, time.perf_counter() - started))

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] += time.perf_counter() - started
            self.calls[step] += 1


class TimedEngines:
    """An `EngineCaller` that times each call it passes on (one step total and one latency observation per
    call, however many batches it carries)."""

    def __init__(self, engines: EngineCaller, times: StepTimes) -> None:
        self.engines = engines
        self.times = times

    async def generate(self, model: str, batches: list[Arrays]) -> list[Arrays | SubCallError]:
        with self.times.engine_call(model):
            return await self.engines.generate(model, batches)
