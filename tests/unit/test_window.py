"""Sliding windows over a long list: which windows run, in what order, and what the response says of them."""

import asyncio
import json

import pytest

from ensemble.bls.caller import RerankAnswer, SubCallError
from ensemble.bls.orchestrator import Orchestrator
from ensemble.config import ConfigError, PipelineConfig
from ensemble.errors import RequestError
from ensemble.rerank.outcome import RerankOutcome
from ensemble.rerank.request import check_rerank_limits, parse_rerank_request
from ensemble.rerank.window import window_count, window_spans, waves


@pytest.mark.parametrize("n,size,stride,count", [(20, 20, 10, 1), (21, 20, 10, 2), (30, 20, 10, 2),
                                                 (60, 20, 10, 5), (100, 20, 10, 9), (61, 20, 10, 6),
                                                 (60, 20, 20, 3), (7, 4, 1, 4)])
def test_windows_cover_the_list_tail_first_and_count_as_the_capacity_model_says(n, size, stride, count):
    spans = window_spans(n, size, stride)
    assert len(spans) == count == window_count(n, size, stride)
    assert spans[0][1] == n and spans[-1][0] == 0  # the tail first, the head last
    assert all(end - start == min(size, n) for start, end in spans[:-1])  # rank_llm's: the head's may be shorter
    assert set().union(*(range(s, e) for s, e in spans)) == set(range(n))
    assert all(b[0] <= a[0] for a, b in zip(spans, spans[1:]))


def test_overlapping_windows_wait_for_each_other_and_disjoint_ones_run_together():
    assert [len(w) for w in waves(window_spans(60, 20, 10))] == [1, 1, 1, 1, 1]
    assert waves(window_spans(60, 20, 20)) == [[(40, 60), (20, 40), (0, 20)]]


class Reverser:
    """A re-ranker that puts each window's list upside down (its last candidate first), and fails on demand."""

    def __init__(self, fail_on=()):
        self.calls: list[list[str]] = []
        self.fail_on = set(fail_on)
        self.running = 0
        self.most_running = 0

    async def rerank(self, request):
        ids = [c.id for c in request.candidates]
        self.calls.append(ids)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        await asyncio.sleep(0.001)
        self.running -= 1
        if len(self.calls) in self.fail_on:
            raise SubCallError("reranker", "UNAVAILABLE", "engine down")
        order = tuple(range(len(ids), 0, -1))
        return RerankAnswer(ids[::-1], RerankOutcome(order, True, 1.0, output_tokens=3, constrained=True))

    async def evaluate_covers(self, query, batches):
        return [[None] * len(items) for items in batches]


def rerank(caller, n, **window):
    config = PipelineConfig.load(overrides={"rerank_window": window} if window else None)
    body = {"query": "q", "candidates": [{"id": f"c{i}", "title": f"t{i}"} for i in range(n)]}
    return asyncio.run(Orchestrator(config, caller)(json.dumps(body).encode(), None))


def test_a_long_list_is_ranked_in_windows_into_one_full_permutation():
    caller = Reverser()
    ranked, response = rerank(caller, 60)
    assert sorted(ranked) == sorted(f"c{i}" for i in range(60)) and len(ranked) == 60
    assert [len(call) for call in caller.calls] == [20] * 5 and caller.most_running == 1
    assert caller.calls[0] == [f"c{i}" for i in range(40, 60)]  # the tail first
    assert caller.calls[1][:10] == [f"c{i}" for i in range(30, 40)]  # the head of the next window: above the last
    assert caller.calls[1][10:] == [f"c{i}" for i in range(59, 49, -1)]  # the best half of the last, carried
    assert [w["positions"] for w in response["windows"]] == [[41, 60], [31, 50], [21, 40], [11, 30], [1, 20]]
    assert response["valid"] and not response["fallback"] and response["output_tokens"] == 15
    # The best of each window carries into the next: the tail's favourite ends at the top.
    assert ranked[0] == "c59"


def test_a_failed_window_falls_back_alone_and_is_named():
    caller = Reverser(fail_on={2})
    ranked, response = rerank(caller, 60)
    assert len(set(ranked)) == 60
    kinds = [w["outcome"] for w in response["windows"]]
    assert kinds == ["valid", "fallback", "valid", "valid", "valid"]
    assert response["windows"][1]["fallback_reason"].startswith("reranker failed: UNAVAILABLE")
    assert not response["valid"] and not response["fallback"]  # the model's order still ranks most of the list


def test_disjoint_windows_run_concurrently():
    caller = Reverser()
    ranked, response = rerank(caller, 60, size=20, stride=20)
    assert caller.most_running == 3 and len(response["windows"]) == 3 and len(set(ranked)) == 60


def test_a_list_within_one_window_is_one_call_with_no_windows_reported():
    caller = Reverser()
    _, response = rerank(caller, 20)
    assert len(caller.calls) == 1 and response["windows"] == []


def test_one_listwise_call_keeps_its_own_limit_and_a_request_the_larger_one():
    limits = PipelineConfig.load().limits
    raw = json.dumps({"query": "q", "candidates": [{"id": f"c{i}", "title": "t"} for i in range(60)]})
    request = parse_rerank_request(raw, limits)
    check_rerank_limits(request, limits)  # rich_media_reranker: windows
    with pytest.raises(RequestError, match=r"^candidates must hold at most 50 items in one listwise call"):
        check_rerank_limits(request, limits, one_call=True)
    too_many = json.dumps({"query": "q", "candidates": [{"id": f"c{i}", "title": "t"} for i in range(limits.max_candidates + 1)]})
    with pytest.raises(RequestError, match=f"at most {limits.max_candidates} items"):
        check_rerank_limits(parse_rerank_request(too_many), limits)


@pytest.mark.parametrize("overrides,key", [({"rerank_window": {"size": 20, "stride": 21}}, "stride"),
                                           ({"rerank_window": {"size": 60}}, "max_window_candidates"),
                                           ({"limits": {"max_window_candidates": 300}}, "max_candidates")])
def test_windows_that_cannot_work_fail_at_load_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        PipelineConfig.load(overrides=overrides)
