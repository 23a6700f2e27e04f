import pytest

from clients.load_options import call_schedule, parse_weights, rerank_options


def test_weights_parse_and_schedule_round_robin():
    weights = parse_weights("rich_media_reranker=3, cover_evaluator=1,query_planner=0")
    assert weights == {"rich_media_reranker": 3, "cover_evaluator": 1, "query_planner": 0}
    assert call_schedule(weights) == ["rich_media_reranker", "cover_evaluator", "rich_media_reranker",
                                      "rich_media_reranker"]


@pytest.mark.parametrize("text", ["bogus=1", "reranker=x", "reranker=0", ""])
def test_bad_weights_are_refused(text):
    with pytest.raises(ValueError):
        parse_weights(text)


def test_task_inputs_follow_the_entry_points_tensors():
    import pytest

    from clients.rerank_client import task_inputs
    from ensemble import names

    inputs = task_inputs(names.COVER.entry, {"query": "q", "image": b"\xff\xd8", "task": "quality"})
    assert [(i.name(), i.shape(), i.datatype()) for i in inputs] == [
        ("query", [1, 1], "BYTES"), ("image", [1, 1], "BYTES"), ("task", [1, 1], "BYTES")]
    assert task_inputs(names.PLANNER.entry, {"query": "q", "session": ["a", "b"]})[1].shape() == [1, 2]
    sent = task_inputs(names.COVER.entry, {"query": "q", "image": b"x", "task": "quality"})[2]
    from tritonclient.utils import deserialize_bytes_tensor

    assert deserialize_bytes_tensor(sent._raw_content).tolist() == [b"quality"]
    with pytest.raises(ValueError, match="needs input 'image'"):
        task_inputs(names.COVER.entry, {"query": "q", "task": "quality"})
    with pytest.raises(ValueError, match=r"has no input\(s\) \['imgae'\]"):
        task_inputs(names.COVER.entry, {"query": "q", "imgae": b"", "task": "quality"})
    with pytest.raises(ValueError, match="no entry point"):
        task_inputs("cover_vlm", {})


def test_rerank_options_are_checked_by_the_request_schema_before_the_load_starts():
    assert rerank_options('{"pointwise": "rank", "grader": "experience"}') == {
        "pointwise": "rank", "grader": "experience"}
    assert rerank_options("") is None
    with pytest.raises(ValueError, match="must be a JSON object"):
        rerank_options("{pointwise: rank}")
    with pytest.raises(ValueError, match="options.pointwise must be one of"):
        rerank_options('{"pointwise": "sort"}')
