"""The re-rank's pre and post steps (`reranker`: reranker_preprocess -> LLM slot -> reranker_postprocess).
The BLS runs the same objects in its own process (ensemble/bls/inprocess.py)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ensemble import tensors as T
from ensemble.arrays import Arrays, as_bytes, bytes_list, scalar_bytes
from ensemble.config import PipelineConfig
from ensemble.constraint import AnswerConstraint
from ensemble.errors import RequestError
from ensemble.fallback import fallback_order
from ensemble.rerank.answer import parse_permutation
from ensemble.rerank.outcome import RerankOutcome
from ensemble.pointwise.request import PointwiseUse, check_given_grades
from ensemble.rerank.prompt import (PointwiseSignal, build_rerank_prompt, carries_pointwise, relevance_only_template,
                                    rerank_template)
from ensemble.rerank.request import PromptVariant, RerankRequest, check_rerank_limits, parse_rerank_request
from ensemble.step import BudgetReport, PostStep, PreStep
from ensemble.tensors import Interface

ENTRY = Interface((T.REQUEST,), (T.RANKED_IDS, T.RESULT))
"""The `reranker` ensemble's own tensors; ``result`` is `RerankOutcome` as JSON."""


class RerankPre(PreStep):
    task = "rerank"
    interface = Interface((T.REQUEST,), T.ENGINE_IN + (T.CANDIDATE_IDS,))

    def __init__(self, config: PipelineConfig, tokenizer: Any) -> None:
        super().__init__(config, tokenizer)
        self.template = rerank_template(config.prompts)
        """The deployment's template; a request may ask for an ablation's instead (options.prompt)."""
        self.templates = {PromptVariant.FULL: self.template, PromptVariant.RELEVANCE_ONLY: relevance_only_template()}

    def __call__(self, inputs: Arrays) -> Arrays:
        request = parse_rerank_request(scalar_bytes(inputs, "request"), self.config.limits)
        check_rerank_limits(request, self.config.limits, one_call=True)
        return self.for_request(request)

    def for_request(self, request: RerankRequest) -> Arrays:
        """The engine tensors (and candidate ids) of a request already parsed and checked against the limits;
        the BLS calls this directly (its orchestrator has done both)."""
        options = request.options
        template, signal = self.templates[options.prompt], None
        if options.pointwise is PointwiseUse.SIGNAL:
            if not carries_pointwise(template):
                raise RequestError("options.pointwise", f"'signal' needs a {template.name} template whose candidate "
                                   "block has {pointwise} and a pointwise_format", value="signal")
            grader = options.grader.value
            signal = PointwiseSignal(grader, self.config.pointwise.scale(grader))
            check_given_grades(request.candidates, options.grader, signal.scale)
        prompt = build_rerank_prompt(template, request, self.tokenizer,
                                     self.generation.max_input_len, encoder=self.encoder, pointwise=signal)
        out = self.engine_inputs(prompt, constraint=AnswerConstraint.permutation(len(request.candidates)),
                                 max_new_tokens=request.options.max_new_tokens,
                                 thinking_budget=request.options.thinking_budget)
        out["candidate_ids"] = np.array([c.id.encode("utf-8") for c in request.candidates], dtype=np.object_)
        return out


class RerankPost(PostStep):
    """The post step reads the request again only when a repair needs the fallback ranker's order."""

    interface = Interface(T.ENGINE_OUT + (T.CANDIDATE_IDS, T.REQUEST), (T.RANKED_IDS, T.RESULT))
    counts_outcomes = True

    def __init__(self, config: PipelineConfig, tokenizer: Any) -> None:
        super().__init__(config, tokenizer)
        self.budget = BudgetReport(tokenizer, config.generation_for(RerankPre.task))

    def __call__(self, inputs: Arrays) -> Arrays:
        ids = candidate_ids(inputs)
        raw = scalar_bytes(inputs, "request")
        # The request is parsed again, once, only when its own budget must be reported or a repair needs it.
        request = functools.cache(lambda: parse_rerank_request(raw))
        budget = request().options.thinking_budget if b"thinking_budget" in raw else None
        outcome = self.outcome(inputs, len(ids), request, thinking_budget=budget)
        if self.counts is not None:
            self.counts.rerank(outcome)
        return ranking_arrays(ids, outcome)

    def outcome(self, inputs: Arrays, n: int, request: Callable[[], RerankRequest], *,
                thinking_budget: int | None = None) -> RerankOutcome:
        """Read the engine's answer for `n` candidates; `request` is asked for only when a repair needs the
        fallback ranker's order. The BLS calls this directly, with the request it already holds."""
        text, output = self.generated_text(inputs)
        report = parse_permutation(text, n)
        if not report.valid:
            # Missing ids are placed by the fallback ranker; only a repair pays for computing its order.
            held = request()
            report = parse_permutation(text, n, fill_order=fallback_order(held.query, held.candidates))
        return RerankOutcome.from_report(report, output_tokens=len(output), **self.budget(output, thinking_budget))


def ranked(ids: Sequence, outcome: RerankOutcome) -> list:
    """The backend's ids in the outcome's order."""
    return [ids[i - 1] for i in outcome.order]


def candidate_ids(inputs: Arrays) -> list[bytes]:
    """The ``candidate_ids`` a pre step passed its post step. Rows of one request's batch are padded to the longest
    with b"" (ensemble/arrays.py); ids are never empty."""
    ids = [i for i in bytes_list(inputs, "candidate_ids") if i]
    if not ids:
        raise RequestError("candidate_ids", "must hold at least one id")
    return ids


def ranking_arrays(ids: Sequence[bytes], outcome: RerankOutcome) -> Arrays:
    """A ranking entry's tensors: ``ranked_ids`` (`ids` in the outcome's order) and ``result`` (the outcome as
    JSON). The `reranker` and `post_ranker` entries answer with these."""
    return {"ranked_ids": np.array(ranked(ids, outcome), dtype=np.object_),
            "result": as_bytes(json.dumps(outcome.to_json_dict(), ensure_ascii=False))}
