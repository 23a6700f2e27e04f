"""Reading the models' answers: re-rank permutations, cover grades and query plans.

Public API: `parse_permutation`, `parse_grade`, `parse_plan`. None of them raises on model output;
each returns what it could use and a record of every repair.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ensemble.domain import IntentDimension, QueryType, normalise_label
from ensemble.tags import split_answer

# Paper eq. (9) and eq. (7).
PERMUTATION_REWARD_NONE, PERMUTATION_REWARD_REPAIRED, PERMUTATION_REWARD_VALID = 0.0, 0.2, 0.5
GRADE_REWARD_NONE, GRADE_REWARD_NON_INTEGER, GRADE_REWARD_VALID = 0.0, 0.3, 0.5

# Parsing splits on separators and matches each item with a bounded pattern: no regex here can backtrack
# over model output (an earlier single-regex version did, on long whitespace runs; tests/unit/test_fuzz.py).
_SEPARATORS = re.compile(r"[,>，、]")
_ITEM = re.compile(r"\[?\s*(\d{1,4})\s*\]?")


@dataclass(frozen=True, slots=True)
class PermutationReport:
    order: list[int]
    """Always a full permutation of 1..n."""
    valid: bool
    """True only when the model's answer was already a clean permutation."""
    format_reward: float
    issues: list[str]
    """One short string per repair, e.g. ``"duplicate id 3 dropped"``."""
    thinking: str = ""
    answered: list[int] = field(default_factory=list)
    """The ids as the model wrote them, before repair."""

    @property
    def repaired(self) -> bool:
        return not self.valid


def parse_permutation(text: str, n: int, *, fill_order: Sequence[int] | None = None) -> PermutationReport:
    """Read ``<answer>[3,1,2]</answer>`` (or ``3,1,2``, ``[3] > [1] > [2]``, ``3 > 1 > 2``) for n candidates.

    Repairs, each reported: keep the first copy of a duplicate, drop ids outside 1..n, then append the
    missing ids in `fill_order` (the fallback ranker's order; default 1..n).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    fill = _checked_fill_order(fill_order, n)
    parts = split_answer(text)
    ids = _read_list(parts.answer)
    if not ids:
        issue = "no answer" if parts.answer is None else (
            "answer list is empty" if ids is not None else "answer is not an id list")
        return PermutationReport(list(fill), False, PERMUTATION_REWARD_NONE,
                                 [issue, "fallback order used"], parts.thinking, [])
    order: list[int] = []
    issues: list[str] = []
    seen: set[int] = set()
    for value in ids:
        if not 1 <= value <= n:
            issues.append(f"invalid id {value} dropped")
        elif value in seen:
            issues.append(f"duplicate id {value} dropped")
        else:
            seen.add(value)
            order.append(value)
    missing = [i for i in fill if i not in seen]
    if missing:
        issues.append(f"missing ids {missing} appended")
        order.extend(missing)
    valid = not issues
    reward = PERMUTATION_REWARD_VALID if valid else PERMUTATION_REWARD_REPAIRED
    return PermutationReport(order, valid, reward, issues, parts.thinking, list(ids))


def _read_list(answer: str | None) -> list[int] | None:
    """``"[3,1,2]"`` -> [3, 1, 2]; ``"[]"`` -> []; anything that is not an id list -> None."""
    if answer is None:
        return None
    text = answer.strip().removesuffix(".").strip()
    if text.replace(" ", "") in ("", "[]"):
        return []
    pieces = [piece.strip() for piece in _SEPARATORS.split(text)]
    if len(pieces) > 1 and pieces[-1] in ("", "]"):  # a trailing separator: "[3,1,2,]"
        last = pieces.pop()
        pieces[-1] += last
    ids = []
    for index, piece in enumerate(pieces):
        if index == 0 and piece.startswith("[["):
            piece = piece[1:]
        match = _ITEM.fullmatch(piece)
        if match is None:
            # The list's own brackets sit on its first and last items: "[3" ... "2]" both match _ITEM.
            return None
        ids.append(int(match.group(1)))
    return ids


def _checked_fill_order(fill_order: Sequence[int] | None, n: int) -> list[int]:
    if fill_order is None:
        return list(range(1, n + 1))
    fill = list(fill_order)
    if sorted(fill) != list(range(1, n + 1)):
        raise ValueError(f"fill_order must be a permutation of 1..{n}, got {fill}")
    return fill


@dataclass(frozen=True, slots=True)
class GradeReport:
    grade: int | None
    """1..4, or None when the answer held no usable grade."""
    format_reward: float
    issue: str = ""
    thinking: str = ""


_GRADE_PREFIXES = ("rating", "grade", "score")
_NUMBER = re.compile(r"[+-]?\d{1,6}(?:\.\d{1,6})?")


def parse_grade(text: str) -> GradeReport:
    """Read ``<answer>3</answer>`` (also ``[3]``, ``Rating: 3``) as grade 3; anything else is no grade."""
    parts = split_answer(text)
    if not parts.answer:
        return GradeReport(None, GRADE_REWARD_NONE, "no answer", parts.thinking)
    number = _grade_number(parts.answer)
    if number is None:
        if not parts.tagged:
            return GradeReport(None, GRADE_REWARD_NONE, "no answer", parts.thinking)
        return GradeReport(None, GRADE_REWARD_NON_INTEGER, "answer is not an integer", parts.thinking)
    if not number.lstrip("+-").isdigit():
        return GradeReport(None, GRADE_REWARD_NON_INTEGER, "answer is not an integer", parts.thinking)
    value = int(number)
    if not 1 <= value <= 4:
        return GradeReport(None, GRADE_REWARD_NON_INTEGER, f"grade {value} outside 1..4", parts.thinking)
    return GradeReport(value, GRADE_REWARD_VALID, "", parts.thinking)


def _grade_number(answer: str) -> str | None:
    """``"Rating: [3]."`` -> ``"3"``; None when the answer is not a lone number."""
    text = answer.strip().removesuffix(".").strip()
    lowered = text.lower()
    for prefix in _GRADE_PREFIXES:
        if lowered.startswith(prefix):
            text = text[len(prefix):].lstrip().removeprefix(":").removeprefix("：").strip()
            break
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1].strip()
    return text if _NUMBER.fullmatch(text) else None


@dataclass(frozen=True, slots=True)
class SubQuery:
    text: str
    intent_dimensions: tuple[IntentDimension, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    query_type: QueryType
    sub_queries: tuple[SubQuery, ...]
    degraded: bool
    """True when the model's plan was unusable and the original query stands in for it."""
    issues: tuple[str, ...] = ()
    thinking: str = ""

    def to_json_dict(self) -> dict[str, object]:
        return {
            "query_type": self.query_type.value,
            "sub_queries": [{"sub_query": s.text, "intent_dimensions": [d.value for d in s.intent_dimensions]}
                            for s in self.sub_queries],
            "degraded": self.degraded,
            "issues": list(self.issues),
            "reasoning": self.thinking,
        }


_QUERY_TYPES = {normalise_label(t.value): t for t in QueryType} | {
    normalise_label(t.value.removesuffix(" Query")): t for t in QueryType}
_DIMENSIONS = {normalise_label(d.value): d for d in IntentDimension}
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def parse_plan(text: str, query: str) -> Plan:
    """Read the planner's JSON answer; an unusable one degrades to a simple query holding `query`.

    ``{"query_type": "Complex Query", "sub_queries": [{"sub_query": "...", "intent_dimensions": [...]}]}``
    """
    parts = split_answer(text)
    issues: list[str] = []
    data = _json_object(parts.answer, issues)
    query_type = _QUERY_TYPES.get(normalise_label(str(data.get("query_type", "")))) if data else None
    if data and query_type is None:
        issues.append(f"unknown query_type {str(data.get('query_type'))[:40]!r}")
    sub_queries = _sub_queries(data.get("sub_queries") if data else None, issues)
    if query_type is None or not sub_queries:
        if data and query_type is not None:
            issues.append("no usable sub-query")
        return Plan(QueryType.SIMPLE, (SubQuery(query, ()),), True, tuple(issues), parts.thinking)
    return Plan(query_type, tuple(sub_queries), False, tuple(issues), parts.thinking)


def _json_object(answer: str | None, issues: list[str]) -> dict | None:
    if not answer:
        issues.append("no answer")
        return None
    try:
        data = json.loads(_FENCE.sub("", answer.strip()))
    except json.JSONDecodeError:
        issues.append("answer is not JSON")
        return None
    if not isinstance(data, dict):
        issues.append("answer is not a JSON object")
        return None
    return data


def _sub_queries(items: object, issues: list[str]) -> list[SubQuery]:
    if not isinstance(items, list):
        if items is not None:
            issues.append("sub_queries is not a list")
        return []
    out: list[SubQuery] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        text = item.get("sub_query") if isinstance(item, dict) else None
        if not isinstance(text, str) or not text.strip():
            issues.append(f"sub_queries[{index}] has no text, dropped")
            continue
        if text.strip() in seen:
            issues.append(f"sub_queries[{index}] repeats an earlier one, dropped")
            continue
        seen.add(text.strip())
        dims: list[IntentDimension] = []
        raw_dims = item.get("intent_dimensions", [])
        for raw in raw_dims if isinstance(raw_dims, list) else [raw_dims]:
            dim = _DIMENSIONS.get(normalise_label(str(raw)))
            if dim is None:
                issues.append(f"sub_queries[{index}] unknown dimension {str(raw)[:40]!r} dropped")
            elif dim not in dims:
                dims.append(dim)
        out.append(SubQuery(text.strip(), tuple(dims)))
    return out
