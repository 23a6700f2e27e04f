"""The post-rank's and the list judge's pre and post steps (`post_ranker`, `list_judge`: pre -> LLM slot with the
post-ranker's adapter -> post). The BLS runs the post-rank's in its own process for `options.post_rank`."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ensemble import tensors as T
from ensemble.arrays import Arrays, as_bytes, bytes_list, scalar_bytes
from ensemble.config import PipelineConfig
from ensemble.constraint import AnswerConstraint
from ensemble.errors import RequestError
from ensemble.postrank import prompt
from ensemble.postrank.answer import Verdict, read_postrank, read_verdict
from ensemble.postrank.request import JudgeRequest, PostRankRequest, parse_judge_request, parse_postrank_request
from ensemble.postrank.soft_tokens import SoftTokens
from ensemble.rerank.outcome import RerankOutcome
from ensemble.rerank.steps import ranked
from ensemble.step import BudgetReport, PostStep, PreStep
from ensemble.template import RenderedPrompt
from ensemble.tensors import Interface

ENTRY = Interface((T.REQUEST,), (T.RANKED_IDS, T.RESULT))
"""`post_ranker`: ``result`` is the RerankOutcome as JSON (order, repairs, reasoning)."""
JUDGE_ENTRY = Interface((T.REQUEST,), (T.RESULT,))
"""`list_judge`: ``result`` is ``{"better": "A" | "B" | null, "reasoning": ..., "valid": ...}``."""


class PostRankPre(PreStep):
    task = "postrank"
    interface = Interface((T.REQUEST,), T.ENGINE_IN + T.SOFT_TOKEN_IN + (T.CANDIDATE_IDS,))

    def __init__(self, config: PipelineConfig, tokenizer: Any, soft: SoftTokens | None = None) -> None:
        super().__init__(config, tokenizer)
        self.template = prompt.load(prompt.POSTRANK, config.prompts)
        self.soft = soft or SoftTokens(config, tokenizer)

    def __call__(self, inputs: Arrays) -> Arrays:
        return self.for_request(parse_postrank_request(scalar_bytes(inputs, "request"), self.config.limits))

    def for_request(self, request: PostRankRequest) -> Arrays:
        table = self.soft.table(request.query, request.user, request.candidates)
        n = len(request.candidates)
        soft = prompt.build_soft_prompt(self.template, self.tokenizer, self.encoder, query=request.query,
                                        blocks={"user": [prompt.USER_ROW], "items": list(range(1, n + 1))},
                                        table=table, vocab_size=self.soft.vocab_size,
                                        max_input_len=self.generation.max_input_len)
        out = self.engine_inputs(RenderedPrompt("", soft.input_ids), constraint=AnswerConstraint.permutation(n),
                                 max_new_tokens=request.options.max_new_tokens,
                                 thinking_budget=request.options.thinking_budget)
        out |= self.soft.tensors(table, soft)
        out["candidate_ids"] = np.array([c.id.encode("utf-8") for c in request.candidates], dtype=np.object_)
        return out


class PostRankPost(PostStep):
    interface = Interface(T.ENGINE_OUT + (T.CANDIDATE_IDS,), (T.RANKED_IDS, T.RESULT))
    counts_outcomes = True

    def __init__(self, config: PipelineConfig, tokenizer: Any) -> None:
        super().__init__(config, tokenizer)
        self.budget = BudgetReport(tokenizer, config.generation_for(PostRankPre.task))

    def __call__(self, inputs: Arrays) -> Arrays:
        ids = [i for i in bytes_list(inputs, "candidate_ids") if i]
        if not ids:
            raise RequestError("candidate_ids", "must hold at least one id")
        outcome = self.outcome(inputs, len(ids))
        if self.counts is not None:
            self.counts.rerank(outcome)
        return {"ranked_ids": np.array(ranked(ids, outcome), dtype=np.object_),
                "result": as_bytes(json.dumps(outcome.to_json_dict(), ensure_ascii=False))}

    def outcome(self, inputs: Arrays, n: int) -> RerankOutcome:
        text, output = self.generated_text(inputs)
        return RerankOutcome.from_report(read_postrank(text, n), output_tokens=len(output), **self.budget(output))


class JudgePre(PreStep):
    task = "judge"
    interface = Interface((T.REQUEST,), T.ENGINE_IN + T.SOFT_TOKEN_IN)

    def __init__(self, config: PipelineConfig, tokenizer: Any, soft: SoftTokens | None = None) -> None:
        super().__init__(config, tokenizer)
        self.template = prompt.load(prompt.JUDGE, config.prompts)
        self.soft = soft or SoftTokens(config, tokenizer)

    def __call__(self, inputs: Arrays) -> Arrays:
        return self.for_request(parse_judge_request(scalar_bytes(inputs, "request"), self.config.limits))

    def for_request(self, request: JudgeRequest) -> Arrays:
        table = self.soft.table(request.query, request.user, request.candidates)
        row = {c.id: i + 1 for i, c in enumerate(request.candidates)}
        soft = prompt.build_soft_prompt(self.template, self.tokenizer, self.encoder, query=request.query,
                                        blocks={"user": [prompt.USER_ROW], "list_a": [row[i] for i in request.list_a],
                                                "list_b": [row[i] for i in request.list_b]},
                                        table=table, vocab_size=self.soft.vocab_size,
                                        max_input_len=self.generation.max_input_len)
        out = self.engine_inputs(RenderedPrompt("", soft.input_ids), constraint=AnswerConstraint.choice(),
                                 max_new_tokens=request.options.max_new_tokens,
                                 thinking_budget=request.options.thinking_budget)
        return out | self.soft.tensors(table, soft)


class JudgePost(PostStep):
    interface = Interface(T.ENGINE_OUT, (T.RESULT,))

    def __call__(self, inputs: Arrays) -> Arrays:
        return {"result": as_bytes(json.dumps(self.verdict(inputs).to_json_dict(), ensure_ascii=False))}

    def verdict(self, inputs: Arrays) -> Verdict:
        text, _ = self.generated_text(inputs)
        return read_verdict(text)


