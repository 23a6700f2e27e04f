"""`pointwise_grader` as callers reach it, and the BLS's pointwise stage: pairs without a cover go to the text
slot, pairs with one to the VLM slot, each slot's pairs in requests of up to its max_batch_size, all out together
(on the C++ `tensorrtllm` slot one request per pair: it takes one sequence per request, and batches them in
flight). The entry is
a Python model (model_repository/pointwise_grader/1/model.py) because an ensemble has one engine slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ensemble.arrays import Arrays, scalar_bytes, stack_rows
from ensemble.bls.caller import EngineCaller, Slot, SubCallError, side_by_side
from ensemble.bls.covers import GradeSource
from ensemble.config import PipelineConfig
from ensemble.cover.grade_cache import image_key
from ensemble.cover.image import CheckedImages
from ensemble.errors import RequestError
from ensemble.outcome_counts import OutcomeCounts
from ensemble.pointwise.answer import known
from ensemble.pointwise.request import PointwiseRequest, parse_pointwise_request
from ensemble.pointwise.steps import PointwisePost, PointwisePre

PointwiseItem = tuple[PointwiseRequest, bytes]
"""One pair to grade and its encoded cover (b"": none, graded from the text alone)."""


class PointwiseGrader:
    def __init__(self, config: PipelineConfig, engines: EngineCaller, *, text_slot: Slot, vision_slot: Slot,
                 text_tokenizer: Any, vision_tokenizer: Any, one_pair_per_text_call: bool = False,
                 rows_per_call: int = 64) -> None:
        """`rows_per_call`: most pairs in one engine request (the slots' max_batch_size)."""
        self.config = config
        self.rows_per_call = rows_per_call
        self.engines = engines
        self.text_slot, self.vision_slot = text_slot, vision_slot
        self.text = PointwisePre(config, text_tokenizer), PointwisePost(config, text_tokenizer)
        self.vision = PointwisePre(config, vision_tokenizer, vision=True), PointwisePost(config, vision_tokenizer)
        self.one_pair_per_text_call = one_pair_per_text_call
        self.checked = CheckedImages(config.limits)
        self.counts = OutcomeCounts()
        """Grades answered, by grader and source, for the entry's outcome metrics."""

    def parse(self, row: Arrays) -> PointwiseItem:
        """One entry row, checked; raises RequestError naming the input."""
        request = parse_pointwise_request(scalar_bytes(row, "query"), scalar_bytes(row, "candidate"),
                                          scalar_bytes(row, "grader"), self.config.limits)
        image = scalar_bytes(row, "image") if "image" in row else b""
        if image:
            self.checked.check(image, image_key(image))
        return request, image

    async def __call__(self, items: Sequence[PointwiseItem]) -> list[Arrays | Exception]:
        """``grade`` (-1: none) and ``reasoning`` per pair, or that pair's error. Covers must be checked."""
        results: list[Arrays | Exception | None] = [None] * len(items)
        text = [i for i, (_, image) in enumerate(items) if not image]
        vision = [i for i, (_, image) in enumerate(items) if image]
        await side_by_side(self._on_slot(items, text, self.text_slot, *self.text, results,
                                         split=self.one_pair_per_text_call),
                           self._on_slot(items, vision, self.vision_slot, *self.vision, results, split=False))
        self.counts.pointwise_grades((request.grader.value, _source(result).value)
                                     for (request, _), result in zip(items, results))
        return results  # type: ignore[return-value] - every row was answered

    async def _on_slot(self, items: Sequence[PointwiseItem], rows: list[int], slot: Slot, pre: PointwisePre,
                       post: PointwisePost, results: list[Arrays | Exception | None], *, split: bool) -> None:
        """Grade `rows` of `items` on `slot`; a pair whose prompt cannot be built fails alone."""
        inputs: list[tuple[int, Arrays]] = []
        for i in rows:
            try:
                inputs.append((i, pre.prompt_inputs(items[i][0])))
            except RequestError as error:
                results[i] = error
        if not inputs:
            return
        size = 1 if split else self.rows_per_call
        groups = [inputs[start:start + size] for start in range(0, len(inputs), size)]
        batches = []
        for group in groups:
            batch = stack_rows([row for _, row in group], slot.interface.inputs)
            if pre.vision:
                batch["image"] = np.array([items[i][1] for i, _ in group], dtype=np.object_).reshape(-1, 1)
            batches.append(batch)
        outputs = await self.engines.generate(slot.model, batches)
        for group, out in zip(groups, outputs):
            if isinstance(out, SubCallError):
                failure: Exception = RequestError("candidate", out.message) if out.is_request_error else out
                for i, _ in group:
                    results[i] = failure
                continue
            for (i, _), answer in zip(group, post.batch_answers(out, [items[i][0].grader for i, _ in group])):
                results[i] = answer


def _source(result: Arrays | Exception | None) -> GradeSource:
    if not isinstance(result, dict):
        return GradeSource.FAILED
    return GradeSource.MODEL if known(int(result["grade"][0])) is not None else GradeSource.MODEL_UNUSABLE
