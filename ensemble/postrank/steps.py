"""The post-rank's and the list judge's pre and post steps (`post_ranker`, `list_judge`: pre -> LLM slot with the
post-ranker's adapter -> post). The BLS runs the post-rank's in its own process for `options.post_rank`."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np

from ensemble import tensors as T
from ensemble.arrays import Arrays, as_bytes, scalar_bytes
from ensemble.config import PipelineConfig
from ensemble.constraint import AnswerConstraint
from ensemble.postrank import prompt
from ensemble.postrank.answer import Verdict, read_postrank, read_verdict
from ensemble.postrank.request import JudgeRequest, PostRankRequest, parse_judge_request, parse_postrank_request
from ensemble.postrank.soft_tokens import SoftTokens
from ensemble.rerank.outcome import RerankOutcome
from ensemble.rerank.steps import candidate_ids, ranking_arrays
from ensemble.step import BudgetReport, PostStep, PreStep
from ensemble.template import RenderedPrompt, TemplateSpec
from ensemble.tensors import Interface

ENTRY = Interface((T.REQUEST,), (T.RANKED_IDS, T.RESULT))
"""`post_ranker`: ``result`` is the RerankOutcome as JSON (order, repairs, reasoning)."""
JUDGE_ENTRY = Interface((T.REQUEST,), (T.RESULT,))
"""`list_judge`: ``result`` is ``{"better": "A" | "B" | null, "reasoning": ..., "valid": ...}``."""


class _SoftTokenPre(PreStep):
    """What both pre steps do: the request's table from the encoder, its template with one placeholder per soft
    token, the engine tensors with the table and the adapter."""

    template_spec: ClassVar[TemplateSpec]

    def __init__(self, config: PipelineConfig, tokenizer: Any, soft: SoftTokens | None = None) -> None:
        """`soft`: shared with the other pre step where one process runs both (ensemble/postrank/runner.py)."""
        super().__init__(config, tokenizer)
        self.template = prompt.load(self.template_spec, config.prompts)
        self.soft = soft or SoftTokens(config, tokenizer)

    def _engine_tensors(self, request: PostRankRequest | JudgeRequest, blocks: dict[str, list[int]],
                        constraint: AnswerConstraint) -> Arrays:
        """`blocks`: the template's soft fields -> table rows (row 0 the user, 1..n the candidates)."""
        table = self.soft.table(request.query, request.user, request.candidates)
        soft = prompt.build_soft_prompt(self.template, self.tokenizer, self.encoder, query=request.query,
                                        blocks=blocks, table=table, vocab_size=self.soft.vocab_size,
                                        placeholder=self.soft.placeholder,
                                        max_input_len=self.generation.max_input_len)
        out = self.engine_inputs(RenderedPrompt("", soft.input_ids), constraint=constraint,
                                 max_new_tokens=request.options.max_new_tokens,
                                 thinking_budget=request.options.thinking_budget)
        return out | self.soft.tensors(table, soft)


class PostRankPre(_SoftTokenPre):
    task = "postrank"
    template_spec = prompt.POSTRANK
    interface = Interface((T.REQUEST,), T.ENGINE_IN + T.SOFT_TOKEN_IN + (T.CANDIDATE_IDS,))

    def __call__(self, inputs: Arrays) -> Arrays:
        return self.for_request(parse_postrank_request(scalar_bytes(inputs, "request"), self.config.limits))

    def for_request(self, request: PostRankRequest) -> Arrays:
        n = len(request.candidates)
        out = self._engine_tensors(request, {"user": [prompt.USER_ROW], "items": list(range(1, n + 1))},
                                   AnswerConstraint.permutation(n))
        out["candidate_ids"] = np.array([c.id.encode("utf-8") for c in request.candidates], dtype=np.object_)
        return out


class PostRankPost(PostStep):
    interface = Interface(T.ENGINE_OUT + (T.CANDIDATE_IDS,), (T.RANKED_IDS, T.RESULT))
    counts_outcomes = True

    def __init__(self, config: PipelineConfig, tokenizer: Any) -> None:
        super().__init__(config, tokenizer)
        self.budget = BudgetReport(tokenizer, config.generation_for(PostRankPre.task))

    def __call__(self, inputs: Arrays) -> Arrays:
        ids = candidate_ids(inputs)
        return ranking_arrays(ids, self.outcome(inputs, len(ids)))

    def outcome(self, inputs: Arrays, n: int) -> RerankOutcome:
        """The answer read for `n` candidates, counted where `counts` is set (the entry's metrics)."""
        text, output = self.generated_text(inputs)
        outcome = RerankOutcome.from_report(read_postrank(text, n), output_tokens=len(output), **self.budget(output))
        if self.counts is not None:
            self.counts.rerank(outcome)
        return outcome


class JudgePre(_SoftTokenPre):
    task = "judge"
    template_spec = prompt.JUDGE
    interface = Interface((T.REQUEST,), T.ENGINE_IN + T.SOFT_TOKEN_IN)

    def __call__(self, inputs: Arrays) -> Arrays:
        return self.for_request(parse_judge_request(scalar_bytes(inputs, "request"), self.config.limits))

    def for_request(self, request: JudgeRequest) -> Arrays:
        row = {c.id: i + 1 for i, c in enumerate(request.candidates)}
        return self._engine_tensors(request, {"user": [prompt.USER_ROW], "list_a": [row[i] for i in request.list_a],
                                              "list_b": [row[i] for i in request.list_b]}, AnswerConstraint.choice())


class JudgePost(PostStep):
    interface = Interface(T.ENGINE_OUT, (T.RESULT,))

    def __call__(self, inputs: Arrays) -> Arrays:
        return {"result": as_bytes(json.dumps(self.verdict(inputs).to_json_dict(), ensure_ascii=False))}

    def verdict(self, inputs: Arrays) -> Verdict:
        text, _ = self.generated_text(inputs)
        return read_verdict(text)


