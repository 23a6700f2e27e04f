"""The post-ranker (seed 004) over gRPC on the CPU target: the tiny post-ranker's LoRA adapter on the tiny re-ranker's
engine, its soft tokens from the feature encoder."""

import pytest

from clients.rerank_client import RerankError
from clients.samples import SAMPLE_USER, with_features

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def items(sample):
    _, candidates, _ = sample
    return [{"id": c["id"], "features": c["features"]} for c in with_features(candidates[:8])]


def test_post_ranking_a_list_answers_a_permutation_of_its_ids(client, items):
    result = client.post_rank("北京 三日游 攻略", items, user=SAMPLE_USER)
    assert sorted(result.ranked_ids) == sorted(i["id"] for i in items)
    assert sorted(result.response["order"]) == list(range(1, len(items) + 1))
    assert result.response["constrained"] and not result.response["fallback"]


def test_the_list_judge_answers_a_or_b(client, items):
    ids = [i["id"] for i in items]
    verdict = client.judge("北京 三日游 攻略", items, ids, ids[::-1], user=SAMPLE_USER)
    assert verdict["better"] in ("A", "B") and verdict["valid"]


@pytest.mark.parametrize(("change", "field", "says"), [
    (lambda items: items[1]["features"].update(colour="red"), "candidates[1].features.colour",
     "not in the feature schema"),
    (lambda items: items[2]["features"].update(click_through_rate=1.5), "candidates[2].features.click_through_rate",
     "within [0, 1]"),
    (lambda items: items[0]["features"].update(category=3.0), "candidates[0].features.category", "must be a string"),
    (lambda items: items[3]["features"].update(category="cars"), "candidates[3].features.category", "vocabulary"),
    (lambda items: items[0]["features"].update(interests="x"), "candidates[0].features.interests",
     "is a user feature"),
])
def test_a_bad_feature_is_refused_naming_the_candidate_and_the_feature(client, items, change, field, says):
    bad = [{"id": i["id"], "features": dict(i["features"])} for i in items]
    change(bad)
    with pytest.raises(RerankError) as refused:
        client.post_rank("北京", bad, user=SAMPLE_USER)
    assert refused.value.is_invalid_argument and field in refused.value.message and says in refused.value.message


def test_a_bad_user_feature_and_a_judge_list_are_refused_naming_the_field(client, items):
    with pytest.raises(RerankError, match=r"user\.activity_days must be within \[0, 31\]"):
        client.post_rank("北京", items, user={"activity_days": 90})
    with pytest.raises(RerankError, match=r"list_b\[0\] must be the id of one of the candidates"):
        client.judge("北京", items, [items[0]["id"]], ["nope"])


def test_options_post_rank_post_ranks_the_head_after_the_re_rank_and_says_so(client, sample):
    _, candidates, _ = sample
    featured = with_features(candidates)
    options = {"evaluate_covers": False}
    plain = client.rerank("北京 三日游 攻略", featured, options=options)
    post = client.rerank("北京 三日游 攻略", featured, options=options | {"post_rank": True}, user=SAMPLE_USER)
    report = post.response["post_rank"]
    k = report["top_k"]
    assert k == 10 < len(featured) and report["applied"] and report["error"] is None
    assert post.response["ranked_by"] == plain.response["ranked_by"] + "+post_rank"
    assert sorted(post.ranked_ids[:k]) == sorted(plain.ranked_ids[:k]) and post.ranked_ids[k:] == plain.ranked_ids[k:]
    assert [plain.ranked_ids[i - 1] for i in report["outcome"]["order"]] == post.ranked_ids[:k]
    assert post.response["timings_ms"]["post_rank"] > 0 and plain.response["post_rank"] is None


def test_options_post_rank_refuses_a_bad_feature_naming_the_requests_own_candidate(client, sample):
    _, candidates, _ = sample
    featured = with_features(candidates)
    featured[11]["features"]["format"] = "hologram"
    with pytest.raises(RerankError) as refused:
        client.rerank("北京", featured, options={"evaluate_covers": False, "post_rank": True})
    assert refused.value.is_invalid_argument and "candidates[11].features.format" in refused.value.message


def test_rmr_postrank_orders_a_request_file_and_asks_the_judge_with_two_lists(grpc_url, items, tmp_path, capsys):
    import json

    from clients.cli import main

    request = tmp_path / "postrank.json"
    request.write_text(json.dumps({"query": "北京", "user": SAMPLE_USER, "candidates": items}, ensure_ascii=False))
    assert main(["--url", grpc_url, "--timeout", "120", "postrank", str(request)]) == 0
    out = capsys.readouterr().out
    assert f"post-ranked {len(items)} candidates from their features" in out
    assert sorted(line.split(". ")[1] for line in out.splitlines() if ". " in line) == sorted(i["id"] for i in items)
    ids = [i["id"] for i in items]
    request.write_text(json.dumps({"query": "北京", "candidates": items, "list_a": ids, "list_b": ids[::-1]}))
    assert main(["--url", grpc_url, "--timeout", "120", "postrank", str(request)]) == 0
    assert json.loads(capsys.readouterr().out)["better"] in ("A", "B")
    request.write_text(json.dumps({"query": "北京", "candidates": [{"id": "a", "features": {"likes": "many"}}]}))
    assert main(["--url", grpc_url, "--timeout", "120", "postrank", str(request)]) == 2
    assert "candidates[0].features.likes must be a finite number" in capsys.readouterr().err
