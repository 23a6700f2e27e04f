"""`cover_evaluator` as the search backend calls it: grades come from the shared grade store when it holds them,
from the VLM slot otherwise, and go back to the store. The same steps as the ensemble (`CoverPre`, `CoverPost`)
build the slot's tensors and read its answers; an ensemble cannot skip its engine, so this entry is a Python
model that calls the slot itself (model_repository/cover_evaluator/1/model.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ensemble.arrays import Arrays, as_bytes, scalar_bytes
from ensemble.bls.caller import SubCallError
from ensemble.bls.covers import GradeSource
from ensemble.bls.caller import EngineCaller, Slot
from ensemble.config import PipelineConfig
from ensemble.cover.grade_cache import image_key
from ensemble.cover.grade_store import GradeRef, GradeStore
from ensemble.cover.request import CoverRequest, check_cover_limits, parse_cover_request
from ensemble.cover.steps import CoverPost, CoverPre
from ensemble.errors import RequestError
from ensemble.outcome_counts import OutcomeCounts


class CoverEvaluator:
    def __init__(self, config: PipelineConfig, tokenizer: Any, engines: EngineCaller, slot: Slot,
                 store: GradeStore | None) -> None:
        self.config = config
        self.pre = CoverPre(config, tokenizer)
        self.post = CoverPost(config, tokenizer)
        self.engines = engines
        self.slot = slot
        self.store = store
        self.counts = OutcomeCounts()
        """Grades answered, by task and source (GradeSource's names), for the entry's outcome metrics."""

    def parse(self, row: Arrays) -> tuple[CoverRequest, bytes, GradeRef]:
        """One row's request, image and grade reference; raises RequestError naming the input."""
        request = parse_cover_request(scalar_bytes(row, "query"), scalar_bytes(row, "task"), self.config.limits)
        check_cover_limits(request, self.config.limits)
        image = scalar_bytes(row, "image")
        digest = image_key(image)
        self.pre.checked.check(image, digest)
        return request, image, GradeRef(request.task, request.query, digest)

    async def __call__(self, rows: Sequence[tuple[CoverRequest, bytes, GradeRef]]) -> list[Arrays | Exception]:
        """`grade` (0 = unknown) and `reasoning` per parsed row; a grade from the store has no reasoning."""
        stored = self.store.lookup([ref for _, _, ref in rows]) if self.store is not None and rows else {}
        todo = [i for i in range(len(rows)) if i not in stored]
        results: list[Arrays | Exception] = [
            {"grade": np.array([stored[i]], dtype=np.int32), "reasoning": as_bytes("")} if i in stored else None
            for i in range(len(rows))]  # type: ignore[misc]
        self.counts.cover_grades((rows[i][0].task.value, GradeSource.STORE.value) for i in stored)
        if todo:
            try:
                batch = self.pre.engine_batch([(rows[i][0].task, rows[i][0].query, rows[i][1]) for i in todo],
                                              self.slot.interface.inputs)
            except RequestError as error:
                for i in todo:
                    results[i] = error
                return results
            [out] = await self.engines.generate(self.slot.model, [batch])
            if isinstance(out, SubCallError):
                failure: Exception = RequestError("image", out.message) if out.is_request_error else out
                for i in todo:
                    results[i] = failure
                return results
            graded = []
            for row, i in enumerate(todo):
                answer = self.post({"output_ids": out["output_ids"][row],
                                    "sequence_length": out["sequence_length"][row]})
                results[i] = answer
                grade = int(answer["grade"][0])
                source = GradeSource.MODEL if grade else GradeSource.MODEL_UNUSABLE
                self.counts.cover_grades([(rows[i][0].task.value, source.value)])
                if grade:
                    graded.append((rows[i][2], grade))
            if self.store is not None and graded:
                self.store.save(graded)
        return results
