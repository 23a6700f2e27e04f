"""The pointwise grader's pre and post steps: one (query, candidate) pair per row, on the text slot, or on the
VLM slot when the candidate's cover is graded with it (ensemble/pointwise/grader.py picks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ensemble import tensors as T
from ensemble.arrays import Arrays, as_bytes, scalar_bytes
from ensemble.config import PipelineConfig
from ensemble.constraint import AnswerConstraint
from ensemble.errors import RequestError
from ensemble.pointwise.answer import read_pointwise
from ensemble.pointwise.prompt import build_pointwise_prompt, pointwise_template
from ensemble.pointwise.request import Grader, PointwiseRequest, parse_pointwise_request
from ensemble.schema import utf8
from ensemble.step import PostStep, PreStep
from ensemble.tensors import Interface

ENTRY = Interface((T.QUERY, T.CANDIDATE, T.GRADER, T.IMAGE.as_optional()), (T.GRADE, T.REASONING))
"""The `pointwise_grader` entry's tensors, a row per candidate: an empty or absent ``image`` grades from the text
alone; ``grade`` is on the grader's scale, -1 (UNKNOWN_GRADE) when the answer held none."""


class PointwisePre(PreStep):
    task = "pointwise"
    interface = Interface((T.QUERY, T.CANDIDATE, T.GRADER), T.ENGINE_IN)

    def __init__(self, config: PipelineConfig, tokenizer: Any, *, vision: bool = False) -> None:
        """`vision`: prompts for the VLM slot, with the cover's image placeholder."""
        super().__init__(config, tokenizer)
        self.vision = vision
        self.templates = {grader: pointwise_template(grader, config.prompts) for grader in Grader}
        self.constraints = {grader: AnswerConstraint.grade(config.pointwise.scale(grader.value)) for grader in Grader}

    def __call__(self, inputs: Arrays) -> Arrays:
        request = parse_pointwise_request(scalar_bytes(inputs, "query"), scalar_bytes(inputs, "candidate"),
                                          scalar_bytes(inputs, "grader"), self.config.limits)
        return self.prompt_inputs(request)

    def prompt_inputs(self, request: PointwiseRequest) -> Arrays:
        """The engine tensors of one parsed and checked pair."""
        constraint = self.constraints[request.grader]
        prompt = build_pointwise_prompt(self.templates[request.grader], request, constraint.scale, self.tokenizer,
                                        self.generation.max_input_len, vision=self.vision, encoder=self.encoder)
        return self.engine_inputs(prompt, constraint=constraint)


class PointwisePost(PostStep):
    interface = Interface(T.ENGINE_OUT + (T.GRADER,), (T.GRADE, T.REASONING))

    def __init__(self, config: PipelineConfig, tokenizer: Any) -> None:
        super().__init__(config, tokenizer)
        self.scales = {grader: config.pointwise.scale(grader.value) for grader in Grader}

    def __call__(self, inputs: Arrays) -> Arrays:
        name = utf8(scalar_bytes(inputs, "grader"), "grader")
        try:
            grader = Grader(name)
        except ValueError:
            raise RequestError("grader", f"must be one of {[g.value for g in Grader]}", value=name) from None
        text, _ = self.generated_text(inputs)
        return self.answer(text, grader)

    def answer(self, text: str, grader: Grader) -> Arrays:
        """``grade`` (UNKNOWN_GRADE: none) and ``reasoning`` of one answer, read on the grader's scale."""
        answer = read_pointwise(text, self.scales[grader])
        return {"grade": np.array([answer.grade], dtype=np.int32), "reasoning": as_bytes(answer.reasoning)}

    def batch_answers(self, outputs: Arrays, graders: Sequence[Grader]) -> list[Arrays]:
        """The answer of each row of a batched engine answer (beam 0)."""
        return [self.answer(text, grader) for text, grader in zip(self.batch_texts(outputs), graders)]
