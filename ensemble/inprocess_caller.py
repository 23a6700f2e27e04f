"""`ModelCaller` that runs the pre and post steps in the caller's process and sends out only the engine calls.

The BLS uses it by default (``sub_calls = "engines"``). A re-rank request then makes two sub-calls (the VLM
slot with every cover row, the LLM slot) instead of two ensembles of three Python-backend models each: on
2 CPU cores each Python-backend hop costs about 1-2 ms of IPC and scheduling, more than most steps compute.
The steps are the same objects the ensembles run (ensemble/steps.py), so both paths send the engines the same
tensors and read their answers the same way; the ensembles stay the entry points for direct callers.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ensemble.config import PipelineConfig
from ensemble.domain import CoverTask
from ensemble.errors import RequestError
from ensemble.orchestrator import RerankAnswer, SubCallError
from ensemble.request import RerankRequest
from ensemble.rows import Arrays, stack_rows
from ensemble.steps import CoverPost, CoverPre, RerankPost, RerankPre
from ensemble.tensors import Interface


class EngineCaller(Protocol):
    async def generate(self, model: str, inputs: Arrays) -> Arrays:
        """One request to an engine slot, a batch row per item: ``output_ids`` [B, beams, T] and
        ``sequence_length`` [B, beams]. Raises SubCallError when the slot answers with an error."""


@dataclass(frozen=True, slots=True)
class Slot:
    model: str
    interface: Interface
    """The tensors the slot takes: only those are sent (ensemble/tensors.py)."""


class StepTimes:
    """Running totals per step, named as the step models are (what Triton's statistics showed per model
    before the steps moved into the BLS), and per engine call as the BLS waits for it ("<slot> call": the
    slot's queue and compute plus the hand-off). The BLS model exports them as Triton metrics."""

    def __init__(self) -> None:
        self.us: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter_ns()
        try:
            yield
        finally:
            self.us[step] += (time.perf_counter_ns() - started) // 1000
            self.calls[step] += 1


class InProcessCaller:
    def __init__(self, config: PipelineConfig, engines: EngineCaller, *, cover_slot: Slot, rerank_slot: Slot,
                 cover_tokenizer: Any, rerank_tokenizer: Any) -> None:
        self.times = StepTimes()
        self.engines = engines
        self.cover_slot = cover_slot
        self.rerank_slot = rerank_slot
        self.cover_pre, self.cover_post = CoverPre(config, cover_tokenizer), CoverPost(config, cover_tokenizer)
        self.rerank_pre, self.rerank_post = RerankPre(config, rerank_tokenizer), RerankPost(config, rerank_tokenizer)

    async def evaluate_covers(self, query: str, items: list[tuple[bytes, CoverTask]]) -> list[int | None]:
        """The orchestrator has checked the query and every image: only the prompt is built here."""
        with self.times("cover_preprocess"):
            tasks = list(dict.fromkeys(task for _, task in items))
            try:
                prompts = stack_rows([self.cover_pre.prompt_inputs(task, query) for task in tasks],
                                     self.cover_slot.interface.inputs)
            except RequestError as error:  # as the ensemble answers: the whole call, INVALID_ARG
                raise SubCallError(self.cover_slot.model, "INVALID_ARG", str(error)) from None
            # Every row's prompt is one of the (at most two) task prompts: pick rows by index, not row by row.
            which = np.array([tasks.index(task) for _, task in items])
            batch = {name: array[which] for name, array in prompts.items()}
            batch["image"] = np.array([image for image, _ in items], dtype=np.object_).reshape(-1, 1)
        with self.times(f"{self.cover_slot.model} call"):
            out = await self.engines.generate(self.cover_slot.model, batch)
        with self.times("cover_postprocess"):
            return self.cover_post.grades(out)

    async def rerank(self, request: RerankRequest) -> RerankAnswer:
        with self.times("reranker_preprocess"):
            try:
                pre = stack_rows([self.rerank_pre.for_request(request)], self.rerank_slot.interface.inputs)
            except RequestError as error:
                raise SubCallError(self.rerank_slot.model, "INVALID_ARG", str(error)) from None
        with self.times(f"{self.rerank_slot.model} call"):
            out = await self.engines.generate(self.rerank_slot.model, pre)
        with self.times("reranker_postprocess"):
            ids = [c.id.encode("utf-8") for c in request.candidates]
            post = self.rerank_post.for_output({"output_ids": out["output_ids"][0],
                                                "sequence_length": out["sequence_length"][0]}, ids, lambda: request)
            ranked = [bytes(v).decode("utf-8") for v in post["ranked_ids"]]
            return RerankAnswer(ranked, json.loads(bytes(post["result"].reshape(-1)[0])))
