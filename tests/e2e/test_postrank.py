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


@pytest.fixture(scope="module")
def zero_b_slot(tmp_path_factory):
    """The text slot alone, its adapter the tiny post-ranker's with every B matrix zero."""
    import shutil

    import numpy as np
    from safetensors.numpy import load_file, save_file

    from build.profile import Checkpoints, resolve_checkpoints
    from build.render import render
    from ensemble import names
    from server.host.launcher import TritonServer
    from tests.e2e.conftest import CACHE

    tiny = resolve_checkpoints("", "", "", str(CACHE))
    folder = tmp_path_factory.mktemp("zero-b") / "postrank"
    shutil.copytree(tiny.postrank, folder)
    weights = load_file(str(folder / "adapter_model.safetensors"))
    save_file({k: np.zeros_like(v) if "lora_B" in k else v for k, v in weights.items()},
              str(folder / "adapter_model.safetensors"))
    repository = render("cpu", tmp_path_factory.mktemp("zero-b-repo") / "repo",
                        Checkpoints(tiny.reranker, tiny.vlm, postrank=str(folder)))
    with TritonServer.on_free_ports(repository, tmp_path_factory.mktemp("zero-b-server"),
                                    models=(names.LLM_ENGINE,)) as server:
        yield server, tiny, folder


def test_over_grpc_an_adapter_with_zero_b_gives_the_base_models_ids_side_by_side_with_base_rows(zero_b_slot, items):
    """The slot's own tensors, as a post_ranker pre step makes them, sent with and without the adapter's task id, one
    by one and at once (the slot batches rows with and without an adapter together)."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    import tritonclient.grpc as grpcclient

    from ensemble import names
    from ensemble.arrays import stack_rows
    from ensemble.config import PipelineConfig
    from ensemble.postrank.request import PostRankRequest
    from ensemble.postrank.steps import PostRankPre
    from ensemble.tensors import TORCH_LLM_SLOT
    from ensemble.tokenizer import load_tokenizer

    server, tiny, folder = zero_b_slot
    pre = PostRankPre(PipelineConfig.load(overrides={"postrank": {"checkpoint": str(folder)}}),
                      load_tokenizer(str(tiny.reranker)))
    request = PostRankRequest.model_validate_json(json.dumps({"query": "北京", "user": SAMPLE_USER, "candidates": items}))
    with_adapter = stack_rows([pre.for_request(request)], TORCH_LLM_SLOT.inputs)
    base = {k: v for k, v in with_adapter.items() if k != "lora_task_id"}

    def call(arrays):
        inputs = []
        for name, array in arrays.items():
            spec = TORCH_LLM_SLOT.input(name)
            inputs.append(grpcclient.InferInput(name, list(array.shape), spec.wire_dtype))
            inputs[-1].set_data_from_numpy(array)
        with grpcclient.InferenceServerClient(server.options.grpc_url) as client:
            result = client.infer(names.LLM_ENGINE, inputs, client_timeout=120)
        return result.as_numpy("output_ids")[0, 0, :int(result.as_numpy("sequence_length")[0, 0])].tolist()

    alone = [call(with_adapter), call(base)]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(call, [with_adapter, base, with_adapter, base]))
    assert alone[0] == alone[1] and together == alone * 2
    soft = int((with_adapter["input_ids"] >= pre.soft.vocab_size).sum())
    assert soft == len(items) + 1 and int(with_adapter["lora_task_id"][0][0]) == 1  # soft tokens, the adapter named
