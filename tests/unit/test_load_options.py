import pytest

from clients.load_options import call_schedule, parse_weights


def test_weights_parse_and_schedule_round_robin():
    weights = parse_weights("rich_media_reranker=3, cover_evaluator=1,query_planner=0")
    assert weights == {"rich_media_reranker": 3, "cover_evaluator": 1, "query_planner": 0}
    assert call_schedule(weights) == ["rich_media_reranker", "cover_evaluator", "rich_media_reranker",
                                      "rich_media_reranker"]


@pytest.mark.parametrize("text", ["bogus=1", "reranker=x", "reranker=0", ""])
def test_bad_weights_are_refused(text):
    with pytest.raises(ValueError):
        parse_weights(text)
