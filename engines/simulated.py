"""A stand-in engine for measurements and fault injection; chosen by the slot's `simulate` parameter.

- ``empty``: answers at once with no tokens (the pipeline's degraded path: no grade, fallback ranking);
- ``valid``: answers at once as a good model would: reasoning of the request's thinking budget, then a
  well-formed answer to its constraint (a permutation of N -> 1..N, a grade -> 2; none -> no tokens).
  What the pipeline costs outside the engines on its normal path;
- ``prose``: as ``valid``, but the answer is said in words a person reads without doubt: ``The final ranking is
  [n,...,1].`` (the reverse order) and ``Rating 3: Relevant`` (how real models answer; lenient reading);
- ``error``: every batch fails (an engine crash);
- ``garbage``: random token ids up to the length limit (a broken model);
- ``delay:MS``: sleeps MS milliseconds, then answers with no tokens (a slow engine, for timeouts and overload).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from typing import Any

from engines.generation import Generation, GenerationRequest
from ensemble.constraint import AnswerKind
from ensemble.errors import RequestError
from ensemble.tags import CLOSE_ANSWER, FORCED_CLOSING

MODES = ("empty", "valid", "prose", "error", "garbage", "delay")
_REASONING = "The candidates differ in relevance, freshness and cover quality; weigh them in turn. "


class SimulatedEngineFailure(RuntimeError):
    pass


class SimulatedEngine:
    def __init__(self, mode: str, *, vocab_size: int = 151936, seed: int = 0, tokenizer: Any = None,
                 hidden_size: int = 0, adapters: Iterable[int] = ()) -> None:
        """`hidden_size`, `adapters`: the soft-token width and LoRA task ids it accepts, as the slot it stands in for
        (it reads neither: its answers depend on the constraint alone)."""
        kind, _, argument = mode.partition(":")
        if kind not in MODES or (kind == "delay") != bool(argument):
            raise ValueError(f"simulate must be one of empty, valid, prose, error, garbage, delay:MS; got {mode!r}")
        if kind in ("valid", "prose") and tokenizer is None:
            raise ValueError(f"simulate={kind} needs the checkpoint's tokenizer to write its answers")
        self.kind = kind
        self.tokenizer = tokenizer
        self._answers: dict[tuple, Generation] = {}
        self.delay_s = float(argument) / 1000 if argument else 0.0
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.adapters = frozenset(int(task) for task in adapters)
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
        if self.kind in ("valid", "prose"):
            return [self._answer(r) for r in requests]
        return [Generation((), "end") for _ in requests]

    def _answer(self, request: GenerationRequest) -> Generation:
        # Encoded once per shape of request: an instant engine should not spend the CPU it is measured beside.
        key = (request.answer_constraint, request.thinking_budget, request.max_new_tokens)
        if key not in self._answers:
            self._answers[key] = self._write_answer(request)
        return self._answers[key]

    def _write_answer(self, request: GenerationRequest) -> Generation:
        constraint = request.answer_constraint
        if not constraint:
            return Generation((), "end")
        if self.kind == "prose":
            answer = (f"The final ranking is [{','.join(str(i) for i in range(constraint.n, 0, -1))}]."
                      if constraint.kind is AnswerKind.PERMUTATION else "Rating 3: Relevant")
        else:
            answer = {AnswerKind.PERMUTATION: f"[{','.join(str(i) for i in range(1, constraint.n + 1))}]",
                      AnswerKind.CHOICE: "A"}.get(constraint.kind, "2")
        encode = lambda text: self.tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
        budget = max(request.thinking_budget, 0)
        closing = encode((FORCED_CLOSING if budget else "<answer>") + answer + CLOSE_ANSWER)
        if self.kind == "prose":  # the words around the answer come out of the reasoning, so it ends whole
            budget = max(0, min(budget, request.max_new_tokens - len(closing)))
        reasoning = encode("<thinking>" + _REASONING * (budget // 8 + 1))[:budget]
        ids = (reasoning if budget else []) + closing
        return Generation(tuple(ids[: request.max_new_tokens]), "stop_word")
