import json

import pytest

from ensemble.config import PipelineConfig
from ensemble.domain import IntentDimension
from ensemble.request import CoverTask
from ensemble.errors import RequestError
from ensemble.request import (check_plan_limits, check_rerank_limits, parse_cover_request, parse_plan_request,
                              parse_rerank_request)


def body(**changes):
    candidate = {"id": "doc-1", "title": "北京旅游攻略", "content": "故宫、长城……", "intent_dimensions":
                 ["Personal Experience"], "publish_time": "2025-10-01T08:00:00+08:00",
                 "click_through_rate": 0.12, "completion_rate": 0.5, "cover_relevance": 3}
    data = {"query": "北京旅游攻略", "candidates": [candidate]}
    data.update(changes)
    return json.dumps(data, ensure_ascii=False)


def candidates(*overrides):
    return [{"id": f"d{i}", "title": "t", **o} for i, o in enumerate(overrides)]


def error_of(raw, limits=None) -> RequestError:
    with pytest.raises(RequestError) as info:
        request = parse_rerank_request(raw)
        if limits is not None:
            check_rerank_limits(request, limits)
    return info.value


def test_valid_request_keeps_unicode_untouched():
    request = parse_rerank_request(body().encode("utf-8"))
    assert request.query == "北京旅游攻略"
    assert request.candidates[0].content == "故宫、长城……"
    assert request.candidates[0].intent_dimensions == (IntentDimension.PERSONAL_EXPERIENCE,)
    assert request.candidates[0].publish_time.utcoffset().total_seconds() == 8 * 3600


def test_unix_seconds_and_naive_times_are_utc():
    request = parse_rerank_request(body(candidates=candidates({"publish_time": 1700000000},
                                                              {"publish_time": "2024-05-01 10:00"})))
    assert request.candidates[0].publish_time.isoformat() == "2023-11-14T22:13:20+00:00"
    assert request.candidates[1].publish_time.isoformat() == "2024-05-01T10:00:00+00:00"


def test_optional_signals_default_to_unknown():
    c = parse_rerank_request(body(candidates=candidates({}))).candidates[0]
    assert (c.content, c.publish_time, c.click_through_rate, c.cover_quality) == ("", None, None, None)


@pytest.mark.parametrize("raw,field,rule", [
    (body(candidates=candidates({"id": None})), "candidates[0].id", "must be a string"),
    ('{"query": "q", "candidates": [{"title": "t"}]}', "candidates[0].id", "is required"),
    (body(candidates=candidates({}, {"id": "d0"})), "candidates[1].id", "must be unique"),
    (body(candidates=candidates({"click_through_rate": 1.2})), "candidates[0].click_through_rate", "must be <= 1"),
    (body(candidates=candidates({"completion_rate": -0.1})), "candidates[0].completion_rate", "must be >= 0"),
    (body(candidates=candidates({"click_through_rate": "0.5"})), "candidates[0].click_through_rate", "must be a number"),
    ('{"query": "q", "candidates": [{"id": "a", "title": "t", "completion_rate": NaN}]}',
     "candidates[0].completion_rate", "finite"),
    (body(candidates=candidates({"publish_time": "last tuesday"})), "candidates[0].publish_time", "ISO 8601"),
    (body(candidates=candidates({"cover_quality": 5})), "candidates[0].cover_quality", "must be <= 4"),
    (body(candidates=candidates({"cover_quality": 2.5})), "candidates[0].cover_quality", "must be an integer"),
    (body(candidates=candidates({"intent_dimensions": ["Vibes"]})), "candidates[0].intent_dimensions[0]",
     "must be one of"),
    (body(candidates=candidates({"colour": "red"})), "candidates[0].colour", "is not a known field"),
    (body(query="   "), "query", "must not be empty"),
    (body(query=7), "query", "must be a string"),
    (body(candidates=[]), "candidates", "at least 1"),
    (body(options={"max_new_tokens": 0}), "options.max_new_tokens", "must be > 0"),
    ('{"query": "q", "candidates": [', "request", "valid JSON"),
    ("[]", "request", "must be an object"),
    (b"\xff\xfe{}", "request", "valid UTF-8"),
])
def test_rule_violations_name_field_and_rule(raw, field, rule):
    error = error_of(raw)
    assert error.field == field
    assert rule in str(error)
    assert str(error).startswith(field)


def test_too_many_candidates_default_limits_200_a_request_50_a_call(pipeline_config):
    raw = body(candidates=[{"id": str(i), "title": "t"} for i in range(201)])
    error = error_of(raw, pipeline_config.limits)
    assert error.field == "candidates" and "at most 200" in str(error)
    check_rerank_limits(parse_rerank_request(body(candidates=[{"id": str(i), "title": "t"} for i in range(200)])),
                        pipeline_config.limits)
    fifty_one = parse_rerank_request(body(candidates=[{"id": str(i), "title": "t"} for i in range(51)]))
    with pytest.raises(RequestError, match="at most 50 items in one listwise call"):
        check_rerank_limits(fifty_one, pipeline_config.limits, one_call=True)


def test_candidate_limit_is_configurable():
    limits = PipelineConfig.load(overrides={"limits": {"max_candidates": 2, "max_window_candidates": 2},
                                            "rerank_window": {"size": 2, "stride": 1}}).limits
    error = error_of(body(candidates=candidates({}, {}, {})), limits)
    assert "at most 2" in str(error)


def test_oversized_texts_are_refused(pipeline_config):
    limits = pipeline_config.limits
    error = error_of(body(candidates=candidates({"content": "x" * (limits.max_content_chars + 1)})), limits)
    assert error.field == "candidates[0].content" and "characters" in str(error)
    error = error_of(body(query="q" * (limits.max_query_chars + 1)), limits)
    assert error.field == "query"


def test_plan_request_and_limits(pipeline_config):
    request = parse_plan_request("北京旅游攻略".encode(), [b"Upcoming concerts in Beijing", "How to get to Tiananmen"])
    assert request.session == ("Upcoming concerts in Beijing", "How to get to Tiananmen")
    check_plan_limits(request, pipeline_config.limits)
    with pytest.raises(RequestError, match="^session must hold at most"):
        check_plan_limits(parse_plan_request(b"q", [b"x"] * 21), pipeline_config.limits)
    with pytest.raises(RequestError, match=r"^session\[1\] must be valid UTF-8"):
        parse_plan_request(b"q", [b"ok", b"\xc3"])
    with pytest.raises(RequestError, match="^query must not be empty"):
        parse_plan_request(b"", [])


def test_cover_request_tasks():
    assert parse_cover_request(b"", b"quality").task is CoverTask.QUALITY
    assert parse_cover_request("猫".encode(), b"relevance").query == "猫"
    with pytest.raises(RequestError, match="^query must not be empty for the relevance task"):
        parse_cover_request(b" ", b"relevance")
    with pytest.raises(RequestError, match="^task must be one of 'relevance' or 'quality'"):
        parse_cover_request(b"q", b"aesthetics")
