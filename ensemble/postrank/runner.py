"""A post-rank or a list judgement as one engine call: the pre step in this process, the text slot with the adapter,
the post step here. The `post_ranker` and `list_judge` entries run it (one Python model each instead of an ensemble
of three), and so does the BLS for `options.post_rank`."""

from __future__ import annotations

from typing import Any

from ensemble import names
from ensemble.arrays import Arrays, scalar_bytes, stack_rows
from ensemble.bls.caller import EngineCaller, RerankAnswer, Slot, SubCallError
from ensemble.config import PipelineConfig
from ensemble.errors import RequestError
from ensemble.postrank.request import JudgeRequest, PostRankRequest, parse_judge_request, parse_postrank_request
from ensemble.postrank.soft_tokens import SoftTokens
from ensemble.postrank.steps import JudgePost, JudgePre, PostRankPost, PostRankPre
from ensemble.rerank.steps import ranked, ranking_arrays


def _row(out: Arrays) -> Arrays:
    return {"output_ids": out["output_ids"][0], "sequence_length": out["sequence_length"][0]}


class PostRanking:
    def __init__(self, config: PipelineConfig, engines: EngineCaller, slot: Slot, tokenizer: Any) -> None:
        soft = SoftTokens(config, tokenizer)
        self.engines, self.slot, self.limits = engines, slot, config.limits
        self.pre, self.post = PostRankPre(config, tokenizer, soft), PostRankPost(config, tokenizer)
        self.judge_pre, self.judge_post = JudgePre(config, tokenizer, soft), JudgePost(config, tokenizer)

    def parse(self, row: Arrays) -> tuple[PostRankRequest, Arrays]:
        """An entry's request row -> (the request, its engine tensors): a bad one is refused here, alone."""
        request = parse_postrank_request(scalar_bytes(row, "request"), self.limits)
        return request, self._engine_row(self.pre.for_request(request))

    def parse_judge(self, row: Arrays) -> tuple[JudgeRequest, Arrays]:
        request = parse_judge_request(scalar_bytes(row, "request"), self.limits)
        return request, self._engine_row(self.judge_pre.for_request(request))

    def _engine_row(self, tensors: Arrays) -> Arrays:
        return stack_rows([tensors], self.slot.interface.inputs)

    async def post_rank(self, items: list[tuple[PostRankRequest, Arrays]]) -> list[RerankAnswer | Exception]:
        outputs = await self.engines.generate(self.slot.model, [tensors for _, tensors in items])
        answers: list[RerankAnswer | Exception] = []
        for (request, _), out in zip(items, outputs):
            if isinstance(out, SubCallError):
                answers.append(out)
                continue
            outcome = self.post.outcome(_row(out), len(request.candidates))
            answers.append(RerankAnswer(ranked([c.id for c in request.candidates], outcome), outcome))
        return answers

    async def post_rank_arrays(self, items: list[tuple[PostRankRequest, Arrays]]) -> list[Arrays | Exception]:
        """`post_rank` as the entry's tensors (ensemble/rerank/steps.py: ranking_arrays)."""
        answers = await self.post_rank(items)
        return [a if isinstance(a, Exception) else
                ranking_arrays([c.id.encode("utf-8") for c in request.candidates], a.outcome)
                for (request, _), a in zip(items, answers)]

    async def judge(self, items: list[tuple[JudgeRequest, Arrays]]) -> list[Arrays | Exception]:
        outputs = await self.engines.generate(self.slot.model, [tensors for _, tensors in items])
        return [out if isinstance(out, SubCallError) else self.judge_post(_row(out)) for out in outputs]

    async def post_rank_one(self, request: PostRankRequest) -> RerankAnswer:
        """The BLS's post-rank of a list it holds (already checked). Raises SubCallError."""
        try:
            tensors = self._engine_row(self.pre.for_request(request))
        except RequestError as error:
            raise SubCallError(names.POSTRANK.entry, "INVALID_ARG", str(error)) from None
        [answer] = await self.post_rank([(request, tensors)])
        if isinstance(answer, Exception):
            raise answer
        return answer
