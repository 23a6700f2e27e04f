import pytest

from ensemble.answer import parse_grade, parse_permutation, parse_plan
from ensemble.domain import IntentDimension, QueryType


@pytest.mark.parametrize("answer", [
    "[3,1,2]", "3,1,2", "[3] > [1] > [2]", "3 > 1 > 2", " [ 3 , 1 , 2 ] ", "[3,\n1,\n2]", "3>1>2", "[3，1，2]",
    "[3,1,2].",
])
def test_permutation_accepted_formats(answer):
    report = parse_permutation(f"<thinking>ok</thinking><answer>{answer}</answer>", 3)
    assert report.order == [3, 1, 2]
    assert report.valid and report.format_reward == 0.5 and report.issues == []


def test_permutation_untagged_plain_list_is_accepted():
    assert parse_permutation("[2,3,1]", 3).order == [2, 3, 1]


def test_permutation_duplicate_keeps_first():
    report = parse_permutation("<answer>[2,1,2,3]</answer>", 3)
    assert report.order == [2, 1, 3]
    assert not report.valid and report.format_reward == 0.2
    assert report.issues == ["duplicate id 2 dropped"]


def test_permutation_invalid_ids_dropped():
    report = parse_permutation("<answer>[0,2,7,1,3]</answer>", 3)
    assert report.order == [2, 1, 3]
    assert report.issues == ["invalid id 0 dropped", "invalid id 7 dropped"]
    assert report.format_reward == 0.2


def test_permutation_missing_ids_appended_in_fill_order():
    report = parse_permutation("<answer>[4]</answer>", 4, fill_order=[2, 4, 3, 1])
    assert report.order == [4, 2, 3, 1]
    assert report.issues == ["missing ids [2, 3, 1] appended"]


def test_permutation_missing_default_fill_is_ascending():
    assert parse_permutation("<answer>[3]</answer>", 4).order == [3, 1, 2, 4]


@pytest.mark.parametrize("text,issue", [
    ("", "no answer"),
    ("<thinking>I rank [2,1,3] because", "no answer"),
    ("<answer>the second one is best</answer>", "answer is not an id list"),
    ("<answer>[]</answer>", "answer list is empty"),
    ("the ranking is 2 1 3", "answer is not an id list"),
])
def test_permutation_no_usable_answer_uses_fill_order(text, issue):
    report = parse_permutation(text, 3, fill_order=[3, 2, 1])
    assert report.order == [3, 2, 1]
    assert report.format_reward == 0.0 and not report.valid
    assert report.issues[0] == issue


def test_permutation_digits_in_reasoning_are_never_read():
    report = parse_permutation("<thinking>put 2 first</thinking>", 3)
    assert report.order == [1, 2, 3] and report.format_reward == 0.0


def test_permutation_rejects_bad_fill_order():
    with pytest.raises(ValueError):
        parse_permutation("[1]", 2, fill_order=[1, 1])


@pytest.mark.parametrize("answer,grade", [("3", 3), (" 4 ", 4), ("[1]", 1), ("Rating: 2", 2), ("2.", 2)])
def test_grade_valid(answer, grade):
    report = parse_grade(f"<thinking>x</thinking><answer>{answer}</answer>")
    assert report.grade == grade and report.format_reward == 0.5


@pytest.mark.parametrize("answer", ["3.5", "three", "5", "0", "3 or 4", "-1"])
def test_grade_non_integer_or_out_of_scale(answer):
    report = parse_grade(f"<answer>{answer}</answer>")
    assert report.grade is None and report.format_reward == 0.3


@pytest.mark.parametrize("text", ["", "<thinking>probably 4", "no tags at all, I say 4"])
def test_grade_no_answer(text):
    report = parse_grade(text)
    assert report.grade is None and report.format_reward == 0.0


def test_plan_valid_json():
    text = ('<thinking>compare</thinking><answer>{"query_type": "Complex Query", "sub_queries": ['
            '{"sub_query": "iPhone 15 vs Mate 60 battery", "intent_dimensions": ["Authoritativeness", '
            '"Personal Experience"]}, {"sub_query": "iPhone 15 vs Mate 60 price", "intent_dimensions": '
            '["Personal Experience"]}]}</answer>')
    plan = parse_plan(text, "iPhone 15 or Mate 60?")
    assert plan.query_type is QueryType.COMPLEX and not plan.degraded
    assert [s.text for s in plan.sub_queries] == ["iPhone 15 vs Mate 60 battery", "iPhone 15 vs Mate 60 price"]
    assert plan.sub_queries[0].intent_dimensions == (IntentDimension.AUTHORITATIVENESS,
                                                     IntentDimension.PERSONAL_EXPERIENCE)
    assert plan.thinking == "compare"


def test_plan_lenient_labels_and_code_fence():
    text = ('<answer>```json\n{"query_type": "broad-needs", "sub_queries": [{"sub_query": "北京景点推荐", '
            '"intent_dimensions": ["personal experience", "Cheapness"]}]}\n```</answer>')
    plan = parse_plan(text, "北京旅游攻略")
    assert plan.query_type is QueryType.BROAD_NEEDS and not plan.degraded
    assert plan.sub_queries[0].text == "北京景点推荐"
    assert plan.sub_queries[0].intent_dimensions == (IntentDimension.PERSONAL_EXPERIENCE,)
    assert any("Cheapness" in issue for issue in plan.issues)


@pytest.mark.parametrize("text", [
    "", "<answer>not json</answer>", "<answer>[1,2]</answer>",
    '<answer>{"query_type": "Odd Query", "sub_queries": [{"sub_query": "x"}]}</answer>',
    '<answer>{"query_type": "Simple Query", "sub_queries": []}</answer>',
    '<answer>{"query_type": "Simple Query", "sub_queries": [{"sub_query": "  "}]}</answer>',
])
def test_plan_unusable_degrades_to_original_query(text):
    plan = parse_plan(text, "天气 today")
    assert plan.degraded and plan.query_type is QueryType.SIMPLE
    assert [s.text for s in plan.sub_queries] == ["天气 today"]
    assert plan.issues


def test_plan_json_dict_round_trip():
    plan = parse_plan('<answer>{"query_type": "Simple Query", "sub_queries": [{"sub_query": "weather today", '
                      '"intent_dimensions": ["High Freshness"]}]}</answer>', "weather today")
    assert plan.to_json_dict()["sub_queries"] == [{"sub_query": "weather today",
                                                   "intent_dimensions": ["High Freshness"]}]
