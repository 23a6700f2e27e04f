"""The cover evaluator's pre and post steps (`cover_evaluator`: cover_preprocess -> VLM slot ->
cover_postprocess). The BLS runs the same objects in its own process (ensemble/bls/inprocess.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ensemble import tensors as T
from ensemble.arrays import Arrays, as_bytes, scalar_bytes, stack_rows
from ensemble.config import PipelineConfig
from ensemble.constraint import AnswerConstraint, AnswerKind
from ensemble.cover.answer import parse_grade, usable_grade
from ensemble.cover.grade_cache import image_key
from ensemble.cover.image import CheckedImages
from ensemble.cover.prompt import build_cover_prompt, cover_template
from ensemble.cover.request import CoverRequest, CoverTask, check_cover_limits, parse_cover_request
from ensemble.step import PostStep, PreStep
from ensemble.tensors import Interface, TensorSpec

ENTRY = Interface((T.QUERY, T.IMAGE, T.TASK), (T.GRADE, T.REASONING))
"""The `cover_evaluator` ensemble's own tensors; ``grade`` 0 means no usable grade."""
_GRADE = AnswerConstraint(AnswerKind.GRADE)


class CoverPre(PreStep):
    task = "cover"
    interface = Interface((T.QUERY, T.IMAGE, T.TASK), T.ENGINE_IN)
    PROMPT_CACHE_SIZE = 1024

    def __init__(self, config: PipelineConfig, tokenizer: Any) -> None:
        super().__init__(config, tokenizer)
        self.templates = {task: cover_template(task, config.prompts) for task in CoverTask}
        # A query's covers all share one prompt per task: build its engine tensors once.
        self._inputs: dict[tuple[CoverTask, str], Arrays] = {}
        # Each cover usually comes twice (relevance, quality): check its header once.
        self.checked = CheckedImages(config.limits)

    def __call__(self, inputs: Arrays) -> Arrays:
        request = parse_cover_request(scalar_bytes(inputs, "query"), scalar_bytes(inputs, "task"), self.config.limits)
        check_cover_limits(request, self.config.limits)
        image = scalar_bytes(inputs, "image")
        self.checked.check(image, image_key(image))
        return self.prompt_inputs(request.task, request.query)

    def engine_batch(self, items: Sequence[tuple[CoverTask, str, bytes]], specs: Iterable[TensorSpec]) -> Arrays:
        """The slot tensors of several (task, query, image) rows, images already checked: each distinct prompt is
        built once and rows pick theirs by index, not row by row."""
        prompts = list(dict.fromkeys((task, query) for task, query, _ in items))
        stacked = stack_rows([self.prompt_inputs(task, query) for task, query in prompts], specs)
        which = np.array([prompts.index((task, query)) for task, query, _ in items])
        batch = {name: array[which] for name, array in stacked.items()}
        batch["image"] = np.array([image for _, _, image in items], dtype=np.object_).reshape(-1, 1)
        return batch

    def prompt_inputs(self, task: CoverTask, query: str) -> Arrays:
        """The engine tensors of a (task, query) prompt, for an image already checked; shared, never to be
        modified. The BLS calls this directly: it has checked the query and every image itself."""
        key = (task, query)
        inputs = self._inputs.get(key)
        if inputs is None:
            prompt = build_cover_prompt(self.templates[task], CoverRequest(query=query, task=task), self.tokenizer,
                                        self.generation.max_input_len, encoder=self.encoder)
            inputs = self.engine_inputs(prompt, constraint=_GRADE)
            if len(self._inputs) >= self.PROMPT_CACHE_SIZE:
                self._inputs.clear()
            self._inputs[key] = inputs
        return inputs


class CoverPost(PostStep):
    interface = Interface(T.ENGINE_OUT, (T.GRADE, T.REASONING))

    def __call__(self, inputs: Arrays) -> Arrays:
        text, _ = self.generated_text(inputs)
        report = parse_grade(text)
        return {"grade": np.array([report.grade or 0], dtype=np.int32),
                "reasoning": as_bytes(report.thinking)}

    def grades(self, outputs: Arrays) -> list[int | None]:
        """The grade of each row of a batched engine answer (beam 0); the BLS uses this."""
        return [usable_grade(parse_grade(text)) for text in self.batch_texts(outputs)]
