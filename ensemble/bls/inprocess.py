"""`ModelCaller` that runs the pre and post steps in the caller's process and sends out only the engine calls.

The BLS uses it by default (`SubCalls.ENGINES`). A re-rank request then makes two sub-calls (the VLM slot with
every cover row, the LLM slot) instead of two ensembles of three Python-backend models each: every
Python-backend hop costs IPC and scheduling, often more than the step computes (`bench.overhead` compares
both). The steps are the same objects the ensembles run, so both paths send the engines the same tensors and
read their answers the same way; the ensembles stay the entry points for direct callers.
"""

from __future__ import annotations

from typing import Any

from ensemble import names
from ensemble.arrays import Arrays, stack_rows
from ensemble.bls.caller import CoverItem, EngineCaller, RerankAnswer, Slot, SubCallError
from ensemble.bls.timing import StepTimes, TimedEngines
from ensemble.config import PipelineConfig
from ensemble.cover.steps import CoverPost, CoverPre
from ensemble.errors import RequestError
from ensemble.pointwise.answer import known
from ensemble.pointwise.grader import PointwiseGrader, PointwiseItem
from ensemble.postrank.request import PostRankRequest
from ensemble.postrank.runner import PostRanking
from ensemble.rerank.request import RerankRequest
from ensemble.rerank.steps import RerankPost, RerankPre, ranked


class InProcessCaller:
    def __init__(self, config: PipelineConfig, engines: EngineCaller, *, cover_slot: Slot, rerank_slot: Slot,
                 cover_tokenizer: Any, rerank_tokenizer: Any, one_pair_per_text_call: bool = False,
                 rows_per_call: int = 64) -> None:
        """`one_pair_per_text_call`: the text slot takes one sequence per request (the C++ tensorrtllm backend);
        `rows_per_call`: most rows in one engine request (the slots' max_batch_size)."""
        self.times = StepTimes()
        self.engines = TimedEngines(engines, self.times)
        self.cover_slot = cover_slot
        self.rerank_slot = rerank_slot
        self.cover_pre, self.cover_post = CoverPre(config, cover_tokenizer), CoverPost(config, cover_tokenizer)
        self.rerank_pre, self.rerank_post = RerankPre(config, rerank_tokenizer), RerankPost(config, rerank_tokenizer)
        self.postrank = PostRanking(config, self.engines, rerank_slot, rerank_tokenizer)
        self.pointwise = PointwiseGrader(config, self.engines, text_slot=rerank_slot, vision_slot=cover_slot,
                                         text_tokenizer=rerank_tokenizer, vision_tokenizer=cover_tokenizer,
                                         one_pair_per_text_call=one_pair_per_text_call, rows_per_call=rows_per_call)

    async def evaluate_covers(self, query: str, batches: list[list[CoverItem]]
                              ) -> list[list[int | None] | SubCallError]:
        """The orchestrator has checked the query and every image: only the prompts are built here."""
        with self.times(names.COVER.pre):
            try:
                inputs = [self.cover_pre.engine_batch([(task, query, image) for image, task in items],
                                                      self.cover_slot.interface.inputs) for items in batches]
            except RequestError as error:  # as the ensemble answers: the whole call, INVALID_ARG
                return [SubCallError(self.cover_slot.model, "INVALID_ARG", str(error))] * len(batches)
        outputs = await self.engines.generate(self.cover_slot.model, inputs)
        with self.times(names.COVER.post):
            return [out if isinstance(out, SubCallError) else self.cover_post.grades(out) for out in outputs]

    async def rerank(self, request: RerankRequest) -> RerankAnswer:
        with self.times(names.RERANK.pre):
            try:
                pre = stack_rows([self.rerank_pre.for_request(request)], self.rerank_slot.interface.inputs)
            except RequestError as error:
                raise SubCallError(self.rerank_slot.model, "INVALID_ARG", str(error)) from None
        [out] = await self.engines.generate(self.rerank_slot.model, [pre])
        if isinstance(out, SubCallError):
            raise out
        with self.times(names.RERANK.post):
            outcome = self.rerank_post.outcome({"output_ids": out["output_ids"][0],
                                                "sequence_length": out["sequence_length"][0]},
                                               len(request.candidates), lambda: request,
                                               thinking_budget=request.options.thinking_budget)
            return RerankAnswer(ranked([c.id for c in request.candidates], outcome), outcome)

    async def post_rank(self, request: PostRankRequest) -> RerankAnswer:
        with self.times(names.POSTRANK.entry):
            return await self.postrank.post_rank_one(request)

    def check_post_rank(self, request: PostRankRequest) -> None:
        self.postrank.pre.soft.inputs(request.user, request.candidates)

    async def grade_pointwise(self, items: list[PointwiseItem]) -> list[int | None | SubCallError]:
        """The orchestrator has checked every pair and cover: the grader builds the prompts and reads the answers."""
        with self.times(names.POINTWISE.entry):
            answers = await self.pointwise(items)
        return [_grade_of(answer) for answer in answers]


def _grade_of(answer: Arrays | Exception) -> int | None | SubCallError:
    if isinstance(answer, SubCallError):
        return answer
    if isinstance(answer, RequestError):
        return SubCallError(names.POINTWISE.entry, "INVALID_ARG", str(answer))
    if isinstance(answer, Exception):
        return SubCallError(names.POINTWISE.entry, "INTERNAL", f"{type(answer).__name__}: {answer}")
    return known(int(answer["grade"][0]))
