"""A stand-in engine for measurements and fault injection; chosen by the slot's `simulate` parameter.

- ``empty``: answers at once with no tokens (measures everything but the engine);
- ``error``: every batch fails (an engine crash);
- ``garbage``: random token ids up to the length limit (a broken model);
- ``delay:MS``: sleeps MS milliseconds, then answers with no tokens (a slow engine, for timeouts and overload).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from engines.generation import Generation, GenerationRequest
from ensemble.errors import RequestError

MODES = ("empty", "error", "garbage", "delay")


class SimulatedEngineFailure(RuntimeError):
    pass


class SimulatedEngine:
    def __init__(self, mode: str, *, vocab_size: int = 151936, seed: int = 0) -> None:
        kind, _, argument = mode.partition(":")
        if kind not in MODES or (kind == "delay") != bool(argument):
            raise ValueError(f"simulate must be one of empty, error, garbage, delay:MS; got {mode!r}")
        self.kind = kind
        self.delay_s = float(argument) / 1000 if argument else 0.0
        self.vocab_size = vocab_size
        self._random = random.Random(seed)

    def generate(self, requests: Sequence[GenerationRequest], images: Sequence[bytes] | None = None
                 ) -> list[Generation | RequestError]:
        if self.kind == "error":
            raise SimulatedEngineFailure("simulated engine failure")
        if self.kind == "delay":
            time.sleep(self.delay_s)
        if self.kind == "garbage":
            return [Generation(tuple(self._random.randrange(self.vocab_size) for _ in range(r.max_new_tokens)),
                               "length") for r in requests]
        return [Generation((), "end") for _ in requests]
