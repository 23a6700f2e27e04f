"""Both ways the BLS reaches the models give the same answer: steps in the BLS (the session server, default)
and the ensembles (`bls_sub_calls = "ensembles"`), with the same tiny real models decoding greedily."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from build.profile import resolve_checkpoints
from build.render import render
from clients.rerank_client import RerankClient
from server.host.launcher import TritonServer
from tests.e2e.conftest import CACHE

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def via_ensembles(tmp_path_factory):
    repository = render("cpu", tmp_path_factory.mktemp("ensembles") / "repo", resolve_checkpoints("", "", "", str(CACHE)),
                        overrides={"serving": {"bls_sub_calls": "ensembles"}})
    with TritonServer.on_free_ports(repository, tmp_path_factory.mktemp("ensembles-server")) as server:
        yield server


def cover(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_engines_and_ensembles_modes_answer_alike(server, via_ensembles, sample):
    candidates = sample[1][:6]
    # Covers no other test sends: every grade comes from the VLM in both modes, none from a cache.
    covers = {c["id"]: cover((17 * i % 256, 90, 31 * i % 256)) for i, c in enumerate(candidates)}
    answers = []
    for url in (server.options.grpc_url, via_ensembles.options.grpc_url):
        with RerankClient(url, timeout_s=120) as client:
            answers.append(client.rerank("北京旅游攻略", candidates, cover_images=covers))
    engines, ensembles = answers
    assert engines.ranked_ids == ensembles.ranked_ids
    for key in ("valid", "repairs", "reasoning", "output_tokens", "budget_forced"):
        assert engines.response[key] == ensembles.response[key], key
    grades = [[(g["relevance"], g["quality"]) for g in a.response["cover_grades"]] for a in answers]
    assert grades[0] == grades[1]
    assert sum(g != (None, None) for g in grades[0]) == 6


def test_both_modes_grade_pointwise_alike(server, via_ensembles, sample):
    """The ensembles mode reaches the pointwise_grader entry (a row per pair); the default runs the grader in the
    BLS: the same grades, the same ranking by them."""
    candidates = sample[1][:5]
    covers = {candidates[1]["id"]: cover((120, 40, 200))}
    answers = []
    for url in (server.options.grpc_url, via_ensembles.options.grpc_url):
        with RerankClient(url, timeout_s=120) as client:
            answers.append(client.rerank("北京旅游攻略", candidates, cover_images=covers,
                                         options={"pointwise": "rank", "grader": "experience",
                                                  "evaluate_covers": False}).response)
    engines, ensembles = answers
    assert engines["ranked_by"] == ensembles["ranked_by"] == "pointwise"
    assert engines["pointwise"]["grades"] == ensembles["pointwise"]["grades"]
    assert engines["ranked_ids"] == ensembles["ranked_ids"]


def test_both_modes_post_rank_alike(server, via_ensembles, sample):
    """The ensembles mode reaches the post_ranker entry; the default runs the post-rank's steps in the BLS."""
    from clients.samples import SAMPLE_USER, with_features

    candidates = with_features(sample[1][:6])
    answers = []
    for url in (server.options.grpc_url, via_ensembles.options.grpc_url):
        with RerankClient(url, timeout_s=120) as client:
            answers.append(client.rerank("北京旅游攻略", candidates, user=SAMPLE_USER,
                                         options={"post_rank": True, "evaluate_covers": False}).response)
    engines, ensembles = answers
    assert engines["ranked_by"] == ensembles["ranked_by"] == "listwise+post_rank"
    assert engines["post_rank"]["outcome"]["order"] == ensembles["post_rank"]["outcome"]["order"]
    assert engines["ranked_ids"] == ensembles["ranked_ids"]
