"""Pointwise graders over gRPC: the `pointwise_grader` entry, and `rich_media_reranker` using its grades as a
listwise signal or as the ranking itself (real tritonserver, tiny models)."""

from __future__ import annotations

import pytest

from clients.rerank_client import RerankError
from tests.e2e.test_pipeline import jpeg

pytestmark = pytest.mark.e2e


def test_a_pointwise_request_returns_a_grade_or_unknown_per_candidate(client, grpc_url, sample):
    from bench.triton_stats import diff, snapshot
    from ensemble import names

    data, candidates, _ = sample
    covers = {candidates[0]["id"]: jpeg(), candidates[2]["id"]: jpeg((20, 200, 40))}
    for grader, scale in (("relevance", range(0, 5)), ("experience", range(1, 5))):
        before = snapshot(grpc_url)
        grades = client.grade(data["query"], candidates, grader=grader, cover_images=covers)
        served = diff(snapshot(grpc_url), before)
        # Pairs with a cover went to the VLM slot, the others to the text slot.
        assert served[names.VLM_ENGINE].inferences == 2
        assert served[names.LLM_ENGINE].inferences == len(candidates) - 2
        assert [g.id for g in grades] == [c["id"] for c in candidates]
        assert all(g.grade is None or g.grade in scale for g in grades), grades
        # Text pairs run on the constrained PyTorch slot: an answer of the scale by construction.
        assert all(g.grade in scale for g in grades if g.id not in covers), grades


def test_more_pairs_than_one_request_holds_are_sent_in_parts(client, sample):
    data, candidates, _ = sample
    many = [{**candidates[i % len(candidates)], "id": f"p{i}"} for i in range(40)]
    grades = client.grade(data["query"], many)
    assert [g.id for g in grades] == [c["id"] for c in many] and all(g.grade is not None for g in grades)


def test_a_bad_pair_is_refused_naming_the_field(client):
    with pytest.raises(RerankError) as refused:
        client.grade("q", [{"id": "a", "title": "ok"}, {"id": "b"}])
    assert refused.value.is_invalid_argument and "candidate.title is required" in str(refused.value)
    with pytest.raises(RerankError) as refused:
        client.grade("q", [{"id": "a", "title": "ok"}], grader="taste")
    assert "grader must be one of" in str(refused.value)


def test_ranking_by_pointwise_grade_makes_no_listwise_call(client, sample):
    data, candidates, covers = sample
    response = client.rerank(data["query"], candidates, cover_images=covers,
                             options={"pointwise": "rank", "grader": "experience"}).response
    assert response["ranked_by"] == "pointwise" and response["reasoning"] == ""
    assert sorted(response["ranked_ids"]) == sorted(c["id"] for c in candidates)
    grade = {g["id"]: g["grade"] for g in response["pointwise"]["grades"]}
    ranked = [grade[i] for i in response["ranked_ids"]]
    known = [g for g in ranked if g is not None]
    assert known == sorted(known, reverse=True) and ranked[len(known):] == [None] * (len(ranked) - len(known))


def test_pointwise_grades_as_a_signal_of_a_windowed_listwise_rerank(client, sample):
    data, candidates, _ = sample
    many = [{**candidates[i % len(candidates)], "id": f"s{i}"} for i in range(30)]
    many[0]["pointwise_grade"] = 4
    response = client.rerank(data["query"], many, options={"pointwise": "signal", "evaluate_covers": False}).response
    assert response["ranked_by"] in ("windows", "fallback") and len(response["windows"]) == 2
    sources = [g["source"] for g in response["pointwise"]["grades"]]
    assert sources[0] == "request" and set(sources[1:]) <= {"model", "model_unusable"}
    assert sorted(response["ranked_ids"]) == sorted(c["id"] for c in many)
    assert set(response["timings_ms"]) == {"covers", "pointwise", "rerank", "post_rank", "total"}


def test_the_reranker_entry_refuses_ranking_by_grade(client):
    with pytest.raises(RerankError) as refused:
        client.rerank_step("q", [{"id": "a", "title": "t"}], options={"pointwise": "rank"})
    assert refused.value.is_invalid_argument and "options.pointwise" in str(refused.value)


def test_cli_grades_the_bundled_sample(grpc_url, capsys):
    from pathlib import Path

    from clients.cli import main
    from clients.samples import __file__ as samples_init

    sample = str(Path(samples_init).with_name("beijing_travel.json"))
    assert main(["--url", grpc_url, "--timeout", "120", "grade", sample, "--grader", "experience"]) == 0
    out = capsys.readouterr().out
    assert "experience grades of" in out and "graded by the VLM" in out
