"""Reading the planner's answer: a query type and sub-queries with intent dimensions, or the query itself."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ensemble.domain import IntentDimension, QueryType, normalise_label
from ensemble.tags import split_answer


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
        data = _object_after_lead_in(answer)
        if data is None:
            issues.append("answer is not JSON")
            return None
        issues.append("plan read out of text around its JSON object")
    if not isinstance(data, dict):
        issues.append("answer is not a JSON object")
        return None
    return data


def _object_after_lead_in(answer: str) -> dict | None:
    """The JSON object after a lead-in sentence (``Here is the plan: {...}``), text after it ignored."""
    start = answer.find("{")
    if start < 0:
        return None
    try:
        data, _ = json.JSONDecoder().raw_decode(answer, start)
    except (json.JSONDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


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
