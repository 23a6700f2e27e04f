"""The BLS's post-rank stage (ensemble/bls/postrank.py) against a caller that needs no Triton."""

import asyncio
import json

import pytest

from ensemble.bls.caller import RerankAnswer, SubCallError
from ensemble.bls.orchestrator import Orchestrator
from ensemble.config import PipelineConfig
from ensemble.errors import RequestError
from ensemble.rerank.outcome import RerankOutcome


class Caller:
    """Re-rank: reversed; post-rank: swaps the first two of the head, or fails as told."""

    def __init__(self, post_error=None, refuse_feature=None, slow_s=0.0):
        self.post_error, self.refuse_feature, self.slow_s = post_error, refuse_feature, slow_s
        self.heads: list[list[str]] = []

    async def rerank(self, request):
        ids = [c.id for c in request.candidates]
        return RerankAnswer(ids[::-1], RerankOutcome(tuple(range(len(ids), 0, -1)), True, 0.5))

    def check_post_rank(self, request):
        for i, c in enumerate(request.candidates):
            if self.refuse_feature in c.features:
                raise RequestError(f"candidates[{i}].features.{self.refuse_feature}", "is not in the feature schema")

    async def post_rank(self, request):
        await asyncio.sleep(self.slow_s)
        self.heads.append([c.id for c in request.candidates])
        if self.post_error:
            raise self.post_error
        ids = [c.id for c in request.candidates]
        order = (2, 1, *range(3, len(ids) + 1))
        return RerankAnswer([ids[i - 1] for i in order], RerankOutcome(order, True, 0.5))


def run(caller, n=14, top_k=10, deadline_ms=None, **extra):
    config = PipelineConfig.load(overrides={"postrank": {"top_k": top_k, "checkpoint": "/ckpt/pr"}})
    options = {"evaluate_covers": False, "post_rank": True} | ({"deadline_ms": deadline_ms} if deadline_ms else {})
    body = {"query": "q", "candidates": [{"id": f"c{i}", "title": "t", "features": {"likes": i}} for i in range(n)],
            "options": options, **extra}
    return asyncio.run(Orchestrator(config, caller)(json.dumps(body).encode(), None))


def test_the_head_takes_the_post_rankers_order_and_the_tail_keeps_the_rankings():
    caller = Caller()
    ranked, response = run(caller)
    reranked = [f"c{i}" for i in range(13, -1, -1)]
    assert caller.heads == [reranked[:10]]
    assert ranked == [reranked[1], reranked[0], *reranked[2:]]
    assert response["ranked_by"] == "listwise+post_rank" and response["post_rank"]["applied"]


def test_top_k_is_capped_by_the_list():
    caller = Caller()
    _, response = run(caller, n=3)
    assert response["post_rank"]["top_k"] == 3 and len(caller.heads[0]) == 3


def test_a_failed_post_rank_keeps_the_ranking_and_says_why():
    ranked, response = run(Caller(post_error=SubCallError("post_ranker", "UNAVAILABLE", "gone")))
    assert ranked == [f"c{i}" for i in range(13, -1, -1)]
    assert response["ranked_by"] == "listwise" and response["post_rank"]["error"] == "UNAVAILABLE: gone"


def test_no_time_left_keeps_the_ranking():
    ranked, response = run(Caller(slow_s=0.5), deadline_ms=200)
    assert ranked == [f"c{i}" for i in range(13, -1, -1)]
    assert not response["post_rank"]["applied"] and response["post_rank"]["error"].startswith("deadline")


def test_a_feature_refused_at_the_call_names_the_requests_own_candidate():
    error = SubCallError("post_ranker", "INVALID_ARG", "candidates[0].features.likes must be within [0, 1e+09]")
    with pytest.raises(RequestError, match=r"candidates\[13\]\.features\.likes must be within"):
        run(Caller(post_error=error))  # the head's first is c13


def test_a_deployment_without_a_post_ranker_refuses_the_option():
    config = PipelineConfig.load()  # [postrank] checkpoint empty
    body = {"query": "q", "candidates": [{"id": "a", "title": "t"}], "options": {"post_rank": True}}
    with pytest.raises(RequestError, match=r"options.post_rank needs a post-ranker, and this deployment has none"):
        asyncio.run(Orchestrator(config, Caller())(json.dumps(body).encode(), None))


def test_features_are_checked_before_any_model_runs():
    caller = Caller(refuse_feature="likes")
    with pytest.raises(RequestError, match=r"candidates\[0\]\.features\.likes is not in the feature schema"):
        run(caller)
    assert caller.heads == []
