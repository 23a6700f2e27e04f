"""How the BLS orchestration reaches the models it needs, written as a Protocol so that it runs without Triton.

The BLS supplies one of two implementations (server/stub/bls.py): by default ensemble/bls/inprocess.py, which
runs the pre/post steps in the BLS and calls only the engine slots; or one that calls the task ensembles.
Tests supply fakes. How the sub-calls of one request are scheduled is the implementation's business.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol, TypeVar

from ensemble.arrays import Arrays
from ensemble.cover.request import CoverTask
from ensemble.pointwise.request import PointwiseRequest
from ensemble.postrank.request import PostRankRequest
from ensemble.rerank.outcome import RerankOutcome
from ensemble.rerank.request import RerankRequest
from ensemble.tensors import Interface

DEADLINE: ContextVar[float | None] = ContextVar("request_deadline", default=None)
"""The current request's deadline (a time.perf_counter() value), set by the orchestrator around its sub-calls: a
caller must then make them cancellable (never wait for one in place)."""

SIDE_BY_SIDE: ContextVar[bool] = ContextVar("sub_calls_side_by_side", default=False)
"""Set while sub-calls of one request run side by side (`side_by_side`): a caller must then wait for none of them
in place, or they would run one after another."""

_T = TypeVar("_T")


async def side_by_side(*calls: Awaitable[_T]) -> list[_T]:
    """`asyncio.gather` for sub-calls that should overlap (windows of one wave, the two slots' pointwise pairs):
    the tasks it starts see SIDE_BY_SIDE set."""
    token = SIDE_BY_SIDE.set(True)
    try:
        return list(await asyncio.gather(*calls))
    finally:
        SIDE_BY_SIDE.reset(token)


CoverItem = tuple[bytes, CoverTask]
"""One cover evaluation: the encoded image and the grade asked for."""


class SubCallError(Exception):
    """A sub-model answered with an error; `code` is Triton's (``INVALID_ARG``, ``UNAVAILABLE``, …)."""

    def __init__(self, model: str, code: str, message: str) -> None:
        super().__init__(f"{model}: {code}: {message}")
        self.model, self.code, self.message = model, code, message

    @property
    def is_request_error(self) -> bool:
        return self.code == "INVALID_ARG"


@dataclass(frozen=True, slots=True)
class RerankAnswer:
    ranked_ids: list[str]
    outcome: RerankOutcome


class EngineCaller(Protocol):
    async def generate(self, model: str, batches: list[Arrays]) -> list[Arrays | SubCallError]:
        """One request per batch to an engine slot, all out together; a batch row per item: ``output_ids``
        [B, beams, T] and ``sequence_length`` [B, beams], or the error that request answered with."""


@dataclass(frozen=True, slots=True)
class Slot:
    model: str
    interface: Interface
    """The tensors the slot takes: only those are sent (ensemble/tensors.py)."""


class ModelCaller(Protocol):
    async def evaluate_covers(self, query: str, batches: list[list[CoverItem]]
                              ) -> list[list[int | None] | SubCallError]:
        """One sub-call per batch, all out together: per batch, a grade 1..4 (None: the answer held none) per
        item, or the error that batch's call answered with."""

    async def rerank(self, request: RerankRequest) -> RerankAnswer:
        """The re-rank of `request` (cover grades filled in). Raises SubCallError."""

    async def post_rank(self, request: PostRankRequest) -> RerankAnswer:
        """The post-ranker's order of `request`'s candidates (options.post_rank). Raises SubCallError."""

    def check_post_rank(self, request: PostRankRequest) -> None:
        """Refuse features the post-ranker cannot read (RequestError naming the field) before any model runs; a
        caller without the feature schema at hand leaves this to the post-rank call."""

    async def grade_pointwise(self, items: list[tuple[PointwiseRequest, bytes]]
                              ) -> list[int | None | SubCallError]:
        """A pointwise grade per (pair, cover) item, all out together (b"": no cover, the text slot grades it):
        the grade, None when the answer held none, or the error that item's call answered with."""
