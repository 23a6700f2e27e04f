"""The deployment as the search backend sees it: real tritonserver, gRPC, tiny real-architecture models."""

from __future__ import annotations

import asyncio
import io
import json
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from clients.rerank_client import AsyncRerankClient, RerankError
from server.stub.metrics import METRICS_FLUSH_S

pytestmark = pytest.mark.e2e


def jpeg(colour=(200, 50, 50), size=(160, 120)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_rerank_returns_every_candidate_once(client, sample):
    data, candidates, covers = sample
    result = client.rerank(data["query"], candidates, cover_images=covers)
    assert sorted(result.ranked_ids) == sorted(c["id"] for c in candidates)
    assert len(result.ranked_ids) == len(set(result.ranked_ids))
    assert result.response["ranked_ids"] == result.ranked_ids
    assert set(result.response["timings_ms"]) == {"covers", "pointwise", "rerank", "post_rank", "total"}
    assert result.response["ranked_by"] in ("listwise", "fallback") and result.response["pointwise"] is None


def test_given_grades_are_used_and_missing_ones_computed(client):
    candidates = [
        {"id": "given", "title": "Beijing guide", "cover_relevance": 4, "cover_quality": 2},
        {"id": "half", "title": "Beijing food", "cover_quality": 3},
        {"id": "none", "title": "Beijing metro"},
        {"id": "no-cover", "title": "Beijing hotels"},
    ]
    fresh = jpeg((77, 11, 201), size=(150, 110))  # used by no other test: never in the cover-grade cache yet
    result = client.rerank("Beijing guide", candidates, cover_images=[fresh, fresh, fresh, b""])
    grades = {g["id"]: g for g in result.response["cover_grades"]}
    assert (grades["given"]["relevance"], grades["given"]["quality"]) == (4, 2)
    assert grades["given"]["source"] == {"relevance": "request", "quality": "request"}
    assert grades["half"]["quality"] == 3 and grades["half"]["source"]["quality"] == "request"
    # The random tiny VLM was asked; whatever it said, a grade is 1..4 or unknown, never invented.
    for doc, task in (("half", "relevance"), ("none", "relevance"), ("none", "quality")):
        assert grades[doc]["source"][task] in ("model", "model_unusable")
        assert grades[doc][task] in (None, 1, 2, 3, 4)
        assert (grades[doc][task] is None) == (grades[doc]["source"][task] == "model_unusable")
    assert grades["no-cover"]["source"] == {"relevance": "no_cover", "quality": "no_cover"}


def test_evaluate_covers_can_be_switched_off(client):
    result = client.rerank("q", [{"id": "a", "title": "t"}], cover_images=[jpeg()],
                           options={"evaluate_covers": False})
    assert result.response["cover_grades"][0]["source"] == {"relevance": "not_requested", "quality": "not_requested"}


def test_unconstrained_random_model_answer_is_reported_not_hidden(client, sample):
    data, candidates, _ = sample
    response = client.rerank(data["query"], candidates).response
    assert response["valid"] is False or response["repairs"] == []
    if not response["valid"]:
        assert response["repairs"], "a repaired or replaced answer must say what was done"


def test_planner_returns_a_valid_plan(client):
    plan = client.plan("北京旅游攻略", ["Upcoming concerts in Beijing", "Cheap hotels in Beijing"])
    assert plan.query_type in ("Complex Query", "Broad-needs Query", "Simple Query")
    assert plan.sub_queries and all(s["sub_query"] for s in plan.sub_queries)
    for sub in plan.sub_queries:
        assert set(sub["intent_dimensions"]) <= {"High Freshness", "Authoritativeness", "Personal Experience"}
    if plan.degraded:
        assert plan.sub_queries == [{"sub_query": "北京旅游攻略", "intent_dimensions": []}]


def test_planner_without_session(client):
    assert client.plan("weather today").sub_queries


def test_cover_evaluator_grades_or_says_unknown(client):
    for task in ("relevance", "quality"):
        grade = client.evaluate_cover(jpeg(), task=task, query="red square")
        assert grade.grade in (None, 1, 2, 3, 4)


def test_every_entry_point_is_callable_by_name_from_the_registry(client):
    """`RerankClient.infer` reaches a task's ensemble from its registered tensors alone."""
    from ensemble import names

    out = client.infer(names.COVER.entry, {"query": "red square", "image": jpeg(), "task": "quality"})
    assert set(out) == {"grade", "reasoning"} and int(out["grade"][0]) in (0, 1, 2, 3, 4)
    plan = client.infer(names.PLANNER.entry, {"query": "北京旅游攻略", "session": ["cheap hotels"]})
    assert json.loads(plan["plan"][0])["query_type"]
    step = client.rerank_step("q", [{"id": "x", "title": "a"}, {"id": "y", "title": "b"}])
    assert sorted(step.ranked_ids) == ["x", "y"] and step.response["order"] in ([1, 2], [2, 1])


def _rerank_error(client, **kwargs) -> RerankError:
    with pytest.raises(RerankError) as info:
        client.rerank(**kwargs)
    return info.value


@pytest.mark.parametrize("kwargs,field", [
    (dict(query="q", candidates=[{"title": "t"}]), "candidates[0].id is required"),
    (dict(query="q", candidates=[{"id": "a", "title": "t"}, {"id": "a", "title": "u"}]),
     "candidates[1].id must be unique"),
    (dict(query="q", candidates=[{"id": "a", "title": "t"}], cover_images=[b"not an image"]),
     "cover_images[0] must be an encoded image"),
    (dict(query="q", candidates=[{"id": str(i), "title": "t"} for i in range(201)]),
     "candidates must hold at most 200"),
    (dict(query="q", candidates=[{"id": "a", "title": "t", "click_through_rate": 3}]),
     "candidates[0].click_through_rate must be <= 1"),
    (dict(query="q", candidates=[{"id": "a", "title": "t"}], cover_images=[b"", b""]),
     "cover_images must hold one element per candidate"),
])
def test_malformed_request_is_invalid_argument_and_server_survives(client, kwargs, field):
    error = _rerank_error(client, **kwargs)
    assert error.is_invalid_argument, error
    assert field in error.message
    assert client.rerank("q", [{"id": "ok", "title": "t"}]).ranked_ids == ["ok"]


def test_invalid_json_is_invalid_argument(grpc_url, client):
    raw = grpcclient.InferenceServerClient(grpc_url)
    tensor = grpcclient.InferInput("request", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[b'{"query": "q", "candidates": [']], dtype=np.object_))
    with pytest.raises(InferenceServerException) as info:
        raw.infer("rich_media_reranker", [tensor])
    assert "INVALID_ARGUMENT" in str(info.value.status()) and "request must be valid JSON" in info.value.message()
    assert raw.is_server_ready()
    assert client.rerank("q", [{"id": "ok", "title": "t"}]).ranked_ids == ["ok"]


def test_wrong_dtype_from_hand_written_client_is_rejected(grpc_url):
    raw = grpcclient.InferenceServerClient(grpc_url)
    tensor = grpcclient.InferInput("request", [1, 1], "INT32")
    tensor.set_data_from_numpy(np.array([[7]], dtype=np.int32))
    with pytest.raises(InferenceServerException) as info:
        raw.infer("rich_media_reranker", [tensor])
    assert "INVALID_ARGUMENT" in str(info.value.status())
    assert raw.is_server_ready()


def test_engine_slot_rejects_out_of_vocabulary_ids(grpc_url):
    raw = grpcclient.InferenceServerClient(grpc_url)
    inputs = []
    for name, array in (("input_ids", np.array([[1, 2, 10_000_000]], dtype=np.int32)),
                        ("input_lengths", np.array([[3]], dtype=np.int32)),
                        ("request_output_len", np.array([[4]], dtype=np.int32))):
        tensor = grpcclient.InferInput(name, list(array.shape), "INT32")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    with pytest.raises(InferenceServerException) as info:
        raw.infer("reranker_llm", inputs)
    assert "INVALID_ARGUMENT" in str(info.value.status()) and "input_ids" in info.value.message()


def test_engine_slot_speaks_tensorrt_llm_tensors(grpc_url):
    raw = grpcclient.InferenceServerClient(grpc_url)
    inputs = []
    for name, array in (("input_ids", np.array([[151644, 872, 198, 14990]], dtype=np.int32)),
                        ("input_lengths", np.array([[4]], dtype=np.int32)),
                        ("request_output_len", np.array([[5]], dtype=np.int32)),
                        ("end_id", np.array([[151645]], dtype=np.int32)),
                        ("pad_id", np.array([[151643]], dtype=np.int32))):
        tensor = grpcclient.InferInput(name, list(array.shape), "INT32")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    result = raw.infer("reranker_llm", inputs)
    output_ids, lengths = result.as_numpy("output_ids"), result.as_numpy("sequence_length")
    assert output_ids.dtype == np.int32 and output_ids.shape[:2] == (1, 1)
    assert lengths.shape == (1, 1) and 0 <= lengths[0, 0] <= 5


def test_bad_request_in_a_dynamic_batch_fails_alone(grpc_url):
    async def run():
        client = AsyncRerankClient(grpc_url, timeout_s=120)
        good = [client.evaluate_cover(jpeg((i * 40, 80, 80)), task="quality") for i in range(5)]
        bad = [client.evaluate_cover(b"\x89PNG truncated", task="quality"),
               client.evaluate_cover(jpeg(), task="aesthetics")]
        results = await asyncio.gather(*good, *bad, return_exceptions=True)
        await client.close()
        return results
    results = asyncio.run(run())
    assert all(not isinstance(r, Exception) for r in results[:5]), results
    assert all(isinstance(r, RerankError) and r.is_invalid_argument for r in results[5:]), results
    assert "image" in results[5].message and "task must be one of" in results[6].message


def test_reranker_ensemble_directly(grpc_url):
    raw = grpcclient.InferenceServerClient(grpc_url)
    body = json.dumps({"query": "q", "candidates": [{"id": "x", "title": "a"}, {"id": "y", "title": "b"}]})
    tensor = grpcclient.InferInput("request", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[body.encode()]], dtype=np.object_))
    result = raw.infer("reranker", [tensor])
    assert sorted(v.decode() for v in result.as_numpy("ranked_ids").reshape(-1)) == ["x", "y"]
    assert set(json.loads(result.as_numpy("result").reshape(-1)[0])) >= {"order", "valid", "repairs", "format_reward"}


def test_cli_reranks_the_bundled_sample(grpc_url, capsys):
    from clients.cli import main
    from clients.samples import __file__ as samples_init

    sample = str(__import__("pathlib").Path(samples_init).with_name("beijing_travel.json"))
    assert main(["--url", grpc_url, "--timeout", "120", "rerank", sample]) == 0
    out = capsys.readouterr().out
    assert out.count("note-10") == 12 and "timings ms" in out


def test_cli_reports_refused_requests_with_exit_code_2(grpc_url, tmp_path, capsys):
    from clients.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text('{"query": "q", "candidates": [{"id": "a"}]}')
    assert main(["--url", grpc_url, "rerank", str(bad)]) == 2
    assert "candidates[0].title is required" in capsys.readouterr().err


def test_constrained_tiny_model_answers_validly_over_grpc(client, sample):
    data, candidates, covers = sample
    response = client.rerank(data["query"], candidates, cover_images=covers).response
    assert response["valid"] is True and response["repairs"] == [] and response["fallback"] is False
    assert response["constrained"] is True and response["budget_forced"] is True
    grades = [g for g in response["cover_grades"] if g["source"]["quality"] in ("model", "cache")]
    assert grades and all(g["quality"] in (1, 2, 3, 4) for g in grades)


def test_repeated_cover_is_served_from_the_cache_and_counted(client, server):
    import urllib.request

    image = jpeg((12, 34, 56), size=(96, 64))
    first = client.rerank("cache probe", [{"id": "a", "title": "t"}, {"id": "b", "title": "u"}],
                          cover_images=[image, image]).response
    assert first["cover_cache"]["deduplicated"] == 2 and first["cover_cache"]["evaluated"] == 2
    second = client.rerank("cache probe", [{"id": "c", "title": "t"}], cover_images=[image]).response
    assert second["cover_grades"][0]["source"] == {"relevance": "cache", "quality": "cache"}
    # The BLS publishes its counters at most METRICS_FLUSH_S after a request (server/metrics_export.py).
    deadline = time.monotonic() + METRICS_FLUSH_S + 5
    while True:
        metrics = urllib.request.urlopen(server.options.metrics_url, timeout=10).read()
        lines = [line for line in metrics.decode().splitlines() if line.startswith("rmr_cover_cache_total")]
        hits = {line.split("{")[1].split("}")[0]: float(line.rsplit(" ", 1)[1]) for line in lines}
        if hits.get('result="hits",task="quality"', 0) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert hits.get('result="hits",task="quality"', 0) >= 1, lines


def test_a_sixty_candidate_request_is_ranked_in_windows(client, sample):
    """Longer than one listwise call: windows of 20, stride 10, tail first (rank_llm's), one full permutation back."""
    data, candidates, _ = sample
    many = [{**candidates[i % len(candidates)], "id": f"w{i}"} for i in range(60)]
    response = client.rerank(data["query"], many, options={"evaluate_covers": False}).response
    assert sorted(response["ranked_ids"]) == sorted(c["id"] for c in many)
    assert [w["positions"] for w in response["windows"]] == [[41, 60], [31, 50], [21, 40], [11, 30], [1, 20]]
    assert all(w["outcome"] in ("valid", "repaired", "fallback") for w in response["windows"])


def test_one_listwise_call_still_refuses_more_than_its_window_limit(client, sample):
    data, candidates, _ = sample
    many = [{**candidates[i % len(candidates)], "id": f"w{i}"} for i in range(51)]
    with pytest.raises(RerankError) as refused:
        client.rerank_step(data["query"], many)
    assert refused.value.is_invalid_argument and "at most 50 items in one listwise call" in str(refused.value)
