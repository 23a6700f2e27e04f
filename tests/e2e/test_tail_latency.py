"""Back-to-back requests over gRPC never wait out a scheduler timer (build/pbtxt.py: batching names the
condition and triton core's lines). With the bounded queue policy the shipped profiles had before, about one
request in twenty from a single client waited ~500 ms in the `rich_media_reranker` queue while the BLS was idle.

A request may wait for the executions ahead of it (one BLS instance runs one execution at a time); what must not
happen is waiting while the server runs nothing. So each request's wait (its client time less the BLS's own,
`timings_ms.total`) is checked for a stretch in which no request was being served, by the requests' own
timestamps."""

from __future__ import annotations

import threading
import time

import pytest

from clients.rerank_client import RerankClient

pytestmark = pytest.mark.e2e

IDLE_BOUND_MS = 150.0
"""Longest stretch of a request's wait with nothing served: loopback gRPC and the hand-offs into and out of the
BLS take a few ms; the batcher's idle sleep is 500 ms."""

Record = tuple[float, float, float]
"""(sent, answered, the BLS's own seconds) of one request, perf_counter seconds."""


def back_to_back(grpc_url: str, sample, requests: int, out: list[Record], offset: int = 0) -> None:
    """`requests` requests one after another, each sent as soon as the last answered."""
    data, candidates, _ = sample
    with RerankClient(grpc_url, timeout_s=120) as client:
        for i in range(offset, offset + requests):
            sent = time.perf_counter()
            response = client.rerank(data["query"], candidates[i % 4:i % 4 + 3],
                                     options={"thinking_budget": 0}).response
            out.append((sent, time.perf_counter(), response["timings_ms"]["total"] / 1000))


def longest_idle_wait_ms(records: list[Record]) -> list[float]:
    """Per request: the longest stretch of its wait (sent .. the BLS started it) in which the BLS served no other
    request."""
    served = sorted((answered - own, answered) for _, answered, own in records)
    longest = []
    for sent, answered, own in records:
        start, end = sent, answered - own
        idle, cursor = 0.0, start
        for begin, finish in served:
            if finish <= cursor or begin >= end:
                continue
            if begin > cursor:
                idle = max(idle, begin - cursor)
            cursor = max(cursor, finish)
            if cursor >= end:
                break
        longest.append(max(idle, end - cursor) * 1000)
    return longest


def test_the_idle_wait_reading_finds_a_stall_and_not_a_queue():
    queued = [(0.0, 0.2, 0.1), (0.0, 0.1, 0.1)]  # the second waited for the first, served all along
    stalled = [(0.0, 0.7, 0.1), (0.0, 0.1, 0.1)]  # ... then nothing was served for 0.5 s
    assert max(longest_idle_wait_ms(queued)) < 1
    assert max(longest_idle_wait_ms(stalled)) == pytest.approx(500)


def test_one_client_back_to_back_never_waits_a_scheduler_timer(grpc_url, sample):
    records: list[Record] = []
    back_to_back(grpc_url, sample, 100, records)
    idle = longest_idle_wait_ms(records)
    assert max(idle) < IDLE_BOUND_MS, sorted(idle)[-5:]


def test_several_clients_back_to_back_never_wait_a_scheduler_timer(grpc_url, sample):
    records: list[Record] = []
    threads = [threading.Thread(target=back_to_back, args=(grpc_url, sample, 30, records, k)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert len(records) == 90
    idle = longest_idle_wait_ms(records)
    assert max(idle) < IDLE_BOUND_MS, sorted(idle)[-5:]
