"""Property tests: whatever a model or a client sends, the parsers answer without raising."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ensemble.answer import parse_grade, parse_permutation, parse_plan
from ensemble.errors import RequestError
from ensemble.request import parse_rerank_request

_answers = st.one_of(
    st.text(max_size=200),
    st.builds(lambda ids, sep: f"<answer>[{sep.join(map(str, ids))}]</answer>",
              st.lists(st.integers(-5, 30), max_size=25), st.sampled_from([",", " > ", "，"])),
    st.builds(lambda a, b: f"<thinking>{a}</thinking><answer>{b}", st.text(max_size=50), st.text(max_size=50)),
)


@settings(max_examples=300, deadline=None)
@given(_answers, st.integers(1, 25))
def test_permutation_is_always_full(text, n):
    report = parse_permutation(text, n)
    assert sorted(report.order) == list(range(1, n + 1))
    assert report.valid == (report.format_reward == 0.5) == (report.issues == [])
    assert report.format_reward in (0.0, 0.2, 0.5)


@settings(max_examples=300, deadline=None)
@given(_answers)
def test_grade_is_in_scale_or_none(text):
    report = parse_grade(text)
    assert report.grade in (None, 1, 2, 3, 4)
    assert (report.grade is not None) == (report.format_reward == 0.5)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.text(min_size=1, max_size=20))
def test_plan_always_has_a_sub_query(text, query):
    plan = parse_plan(text, query)
    assert plan.sub_queries and all(s.text for s in plan.sub_queries)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    _json_values.map(json.dumps),
    st.fixed_dictionaries({"query": _json_values, "candidates": st.lists(
        st.dictionaries(st.sampled_from(["id", "title", "content", "click_through_rate", "publish_time",
                                         "cover_quality", "intent_dimensions"]), _json_values), max_size=4)
    }).map(json.dumps),
    st.binary(max_size=100)))
def test_request_parser_only_raises_request_error(raw):
    try:
        parse_rerank_request(raw)
    except RequestError as error:
        assert error.field and str(error).startswith(error.field)


def test_adversarial_answers_parse_in_linear_time():
    # These made the earlier single-regex parser backtrack for minutes.
    for junk in (" " * 5000 + "x", "[1," + " " * 5000 + "]x", "1" + ", 1" * 3000 + "x", "[" + " \n" * 4000,
                 "Rating:" + " " * 5000 + "x", "[" * 3000 + "1"):
        assert parse_permutation(f"<answer>{junk}</answer>", 5).format_reward in (0.0, 0.2)
        assert parse_grade(f"<answer>{junk}</answer>").grade is None
