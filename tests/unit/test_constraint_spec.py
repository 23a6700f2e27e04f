"""The answer constraint's one wire format (ensemble/constraint.py)."""

import pytest

from ensemble.constraint import AnswerConstraint, AnswerKind
from ensemble.errors import RequestError


@pytest.mark.parametrize("text,kind,n", [("", AnswerKind.FREE, 0), ("grade", AnswerKind.GRADE, 0),
                                         ("choice", AnswerKind.CHOICE, 0),
                                         ("permutation:1", AnswerKind.PERMUTATION, 1),
                                         ("permutation:20", AnswerKind.PERMUTATION, 20)])
def test_parse_and_write_round_trip(text, kind, n):
    constraint = AnswerConstraint.parse(text)
    assert (constraint.kind, constraint.n) == (kind, n)
    assert str(constraint) == text
    assert bool(constraint) == (kind is not AnswerKind.FREE)


@pytest.mark.parametrize("text", ["permutation:0", "permutation:", "permutation", "permutation:-3", "permutation:x",
                                  "grade:4", "Grade", "permutation:１", "rank:3", "choice:AB"])
def test_anything_else_is_refused_naming_the_field(text):
    with pytest.raises(RequestError, match="^answer_constraint must be"):
        AnswerConstraint.parse(text)


def test_answer_tokens_count_digits_commas_and_brackets():
    assert AnswerConstraint.permutation(3).answer_tokens == len("[1,2,3]")
    assert AnswerConstraint.permutation(12).answer_tokens == len("[" + ",".join(map(str, range(1, 13))) + "]")
    assert AnswerConstraint(AnswerKind.GRADE).answer_tokens == 1


def test_regexes_name_the_whole_output():
    assert AnswerConstraint.permutation(3).output_regex(0) == r"<answer>\[(1|2|3)(,(1|2|3)){2}\]</answer>"
    assert AnswerConstraint(AnswerKind.GRADE).output_regex(0) == "<answer>[1-4]</answer>"
    assert AnswerConstraint(AnswerKind.GRADE).output_regex(8).endswith("?<answer>[1-4]</answer>")
