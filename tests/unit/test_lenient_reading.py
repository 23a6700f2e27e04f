"""Answers a person reads without doubt are read, and the reading is reported; ambiguous ones are not.

Form by form: what the model wrote -> the order (or grade, or plan) the pipeline uses -> the repair it reports.
"""

import pytest

from ensemble.answer import parse_grade, parse_permutation, parse_plan
from ensemble.domain import QueryType

BRACKETED, PROSE = "read_bracketed", "read_from_prose"

PERMUTATIONS = [
    # (answer inside <answer>, order of 3, how it was read)
    ("The final ranking is [2,1,3].", [2, 1, 3], BRACKETED),
    ("Ranking (best first): 3 > 1 > 2", [3, 1, 2], PROSE),
    ("Top 5: [3,1,2]", [3, 1, 2], BRACKETED),              # "5" is prose, the bracketed list is the answer
    ("Top 3 results are 2, 3, 1", [2, 3, 1], PROSE),      # the longest run of ids, not the "3" in the words
    ("最终排序：[2,1,3]", [2, 1, 3], BRACKETED),             # a Chinese lead-in
    ("［２，３，１］", [2, 3, 1], BRACKETED),                   # full-width brackets and digits
    ("③,①,②", [3, 1, 2], PROSE),                           # circled digits
    ("```json\n[2, 3, 1]\n```", [2, 3, 1], BRACKETED),     # a list inside a code fence
    ('"3", "1", "2"', [3, 1, 2], PROSE),                   # quoted ids
    ("ID 3, ID 1, ID 2", [3, 1, 2], PROSE),
    ("3 1 2", [3, 1, 2], PROSE),                           # space-separated
    ("3; 1; 2", [3, 1, 2], PROSE),                         # semicolon-separated
    ("Ranking: [3] > [1] > [2]", [3, 1, 2], BRACKETED),    # bracketed single ids in order
    ("[2,1,3] puts the overview first.", [2, 1, 3], BRACKETED),
]


@pytest.mark.parametrize(("answer", "order", "how"), PERMUTATIONS)
def test_an_unambiguous_answer_in_prose_is_read_and_the_reading_reported(answer, order, how):
    report = parse_permutation(f"<thinking>weighing</thinking><answer>{answer}</answer>", 3)
    assert report.order == order
    assert not report.valid and report.format_reward == 0.2  # read, but not the bare list asked for
    assert [r.kind.value for r in report.repairs] == [how]
    assert report.repairs[0].to_json_dict()["message"]


@pytest.mark.parametrize("answer", [
    "[1,2] or maybe [2,1]",         # two lists: which one?
    "1, 2 and then 3, 2",           # two runs as long as each other
    "I cannot decide",
])
def test_an_ambiguous_answer_is_not_read(answer):
    report = parse_permutation(f"<answer>{answer}</answer>", 3)
    assert report.order == [1, 2, 3] and report.format_reward == 0.0
    assert report.repairs[-1].kind.value == "fallback_order"


def test_prose_without_tags_is_read_only_from_brackets():
    assert parse_permutation("The ranking is [2,1,3]", 3).order == [2, 1, 3]
    # Untagged prose may be reasoning: its numbers are never an answer.
    assert parse_permutation("I would put 2 then 1 then 3", 3).repairs[-1].kind.value == "fallback_order"


def test_a_prose_answer_is_repaired_like_any_other():
    report = parse_permutation("<answer>Final: [2, 2, 9, 1]</answer>", 3)
    assert report.order == [2, 1, 3]
    assert [r.kind.value for r in report.repairs] == [BRACKETED, "duplicate_id", "invalid_id", "missing_ids"]


@pytest.mark.parametrize(("text", "grade"), [
    ("<answer>评分：3</answer>", 3),
    ("<answer>Rating 4: Strongly Relevant</answer>", 4),
    ("Rating 4: Strongly Relevant", 4),          # untagged, but it starts with the grade's label
    ("<answer>3/4</answer>", 3),
    ("<answer>2 out of 4</answer>", 2),
    ("<answer>等级：４</answer>", 4),               # full-width digit
    # Markdown emphasis and inline code, as chat models write an answer
    ("<answer>**3**</answer>", 3),
    ("<answer>*2*</answer>", 2),
    ("<answer>__4__</answer>", 4),
    ("<answer>`1`</answer>", 1),
    ("<answer>***3***</answer>", 3),
    ("<answer>**Rating: 3**</answer>", 3),
    ("<answer>Rating: **4**</answer>", 4),
    ("<answer>**3/4**</answer>", 3),
    ("<answer> **3** </answer>", 3),
])
def test_a_grade_said_in_words_is_read_and_reported(text, grade):
    report = parse_grade(text)
    assert report.grade == grade and report.read.startswith("grade read out of")


@pytest.mark.parametrize("text", [
    "<answer>Rating: 3 or 4</answer>",           # two numbers
    "<answer>Rating 5: excellent</answer>",      # off the scale
    "no tags at all, I say 4",                   # unlabelled prose
    "<answer>[1, ]x</answer>",
    "<answer>**5**</answer>",                    # emphasis taken off, still off the scale
    "<answer>**3** or **4**</answer>",           # two numbers
])
def test_a_grade_that_is_not_clear_is_no_grade(text):
    assert parse_grade(text).grade is None


def test_an_emphasised_grade_is_read_on_a_pointwise_scale_too():
    assert parse_grade("<answer>**0**</answer>", (0, 4)).grade == 0


def test_a_bare_grade_is_read_without_a_note():
    report = parse_grade("<answer>3</answer>")
    assert report.grade == 3 and report.read == ""


def test_a_plan_after_a_lead_in_sentence_is_read_and_the_reading_noted():
    text = ('<answer>Here is the plan: {"query_type": "Complex Query", "sub_queries": '
            '[{"sub_query": "北京 景点", "intent_dimensions": ["Authoritativeness"]}]} Hope it helps.</answer>')
    plan = parse_plan(text, "北京旅游")
    assert plan.query_type is QueryType.COMPLEX and not plan.degraded
    assert [s.text for s in plan.sub_queries] == ["北京 景点"]
    assert plan.issues == ("plan read out of text around its JSON object",)
