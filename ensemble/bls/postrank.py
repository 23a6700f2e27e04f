"""The BLS's post-rank stage (options.post_rank): after the ranking, its head (the first [postrank] top_k) goes to
the post-ranker as soft tokens, and the head takes the post-ranker's order; the tail keeps the ranking's.

Degradation rules, as for the re-rank: a request error (a feature the post-ranker cannot read) is the caller's, named
by the candidate's index in the request; a post-rank that fails for any other reason, or that has no time left,
leaves the ranking as it was and says why (``post_rank.error``).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

from ensemble.bls.caller import ModelCaller, RerankAnswer, SubCallError
from ensemble.errors import RequestError
from ensemble.postrank.request import PostRankItem, PostRankRequest
from ensemble.rerank.request import RerankRequest

_CANDIDATE = re.compile(r"candidates\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class PostRankReport:
    top_k: int
    result: str
    """What happened, its `rmr_post_ranks_total` label (ensemble/outcome_counts.py: POST_RANK_RESULTS)."""
    outcome: dict[str, Any] = field(default_factory=dict)
    """The post-ranker's RerankOutcome as JSON (order over the head, repairs, reasoning)."""
    error: str | None = None
    ms: float = 0.0

    @property
    def applied(self) -> bool:
        """Whether the head now has the post-ranker's order."""
        return self.result == "applied"

    def to_json_dict(self) -> dict[str, Any]:
        return {"top_k": self.top_k, "applied": self.applied, "outcome": self.outcome or None, "error": self.error,
                "ms": self.ms}


def head_request(request: RerankRequest, ranked_ids: list[str], top_k: int) -> tuple[PostRankRequest, list[int]]:
    """The post-rank request of the first `top_k` ranked candidates, and each one's index in `request`."""
    index = {c.id: i for i, c in enumerate(request.candidates)}
    head = [index[i] for i in ranked_ids[:top_k]]
    items = tuple(PostRankItem(id=request.candidates[i].id, features=request.candidates[i].features) for i in head)
    return PostRankRequest(query=request.query, user=request.user, candidates=items), head


def check_features(caller: ModelCaller, request: RerankRequest) -> None:
    """Every candidate's features and the user's, before any model runs: a refusal names the request's own index."""
    items = tuple(PostRankItem(id=c.id, features=c.features) for c in request.candidates)
    caller.check_post_rank(PostRankRequest(query=request.query, user=request.user, candidates=items))


async def post_rank_head(caller: ModelCaller, request: RerankRequest, answer: RerankAnswer, top_k: int, *,
                         time_left: float | None = None) -> tuple[list[str], PostRankReport]:
    """The ranked ids with the head post-ranked, and what happened."""
    started = time.perf_counter()
    k = min(top_k, len(answer.ranked_ids))
    head, indexes = head_request(request, answer.ranked_ids, k)
    try:
        if time_left is not None and time_left <= 0:
            raise TimeoutError
        call = caller.post_rank(head)
        post = await (call if time_left is None else asyncio.wait_for(call, time_left))
    except TimeoutError:
        return answer.ranked_ids, PostRankReport(k, "deadline", error="deadline: no time left for the post-rank",
                                                 ms=_ms(started))
    except SubCallError as error:
        if error.is_request_error:  # its candidates[i] are the head's: name the request's own
            raise RequestError("request", _CANDIDATE.sub(lambda m: f"candidates[{indexes[int(m[1])]}]",
                                                         error.message)) from None
        return answer.ranked_ids, PostRankReport(k, "failed", error=f"{error.code}: {error.message}",
                                                 ms=_ms(started))
    return post.ranked_ids + answer.ranked_ids[k:], PostRankReport(k, "applied", post.outcome.to_json_dict(),
                                                                   ms=_ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
