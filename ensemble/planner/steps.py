"""The planner's pre and post steps (`query_planner`: planner_preprocess -> LLM slot -> planner_postprocess)."""

from __future__ import annotations

import json
from typing import Any

from ensemble import tensors as T
from ensemble.arrays import Arrays, as_bytes, bytes_list, scalar_bytes
from ensemble.config import PipelineConfig
from ensemble.planner.answer import parse_plan
from ensemble.planner.prompt import build_plan_prompt, planner_template
from ensemble.planner.request import check_plan_limits, parse_plan_request
from ensemble.step import PostStep, PreStep
from ensemble.tensors import Interface

ENTRY = Interface((T.QUERY, T.SESSION), (T.PLAN,))
"""The `query_planner` ensemble's own tensors."""


class PlannerPre(PreStep):
    task = "planner"
    interface = Interface((T.QUERY, T.SESSION), T.ENGINE_IN)

    def __init__(self, config: PipelineConfig, tokenizer: Any) -> None:
        super().__init__(config, tokenizer)
        self.template = planner_template(config.prompts)

    def __call__(self, inputs: Arrays) -> Arrays:
        request = parse_plan_request(scalar_bytes(inputs, "query"), bytes_list(inputs, "session"), self.config.limits)
        check_plan_limits(request, self.config.limits)
        prompt = build_plan_prompt(self.template, request, self.tokenizer, self.generation.max_input_len,
                                   encoder=self.encoder)
        # A plan is free JSON: the whole output length is room for it.
        return self.engine_inputs(prompt, answer_tokens=self.generation.max_new_tokens)


class PlannerPost(PostStep):
    interface = Interface(T.ENGINE_OUT + (T.QUERY,), (T.PLAN,))

    def __call__(self, inputs: Arrays) -> Arrays:
        text, _ = self.generated_text(inputs)
        plan = parse_plan(text, scalar_bytes(inputs, "query").decode("utf-8", "replace"))
        return {"plan": as_bytes(json.dumps(plan.to_json_dict(), ensure_ascii=False))}
