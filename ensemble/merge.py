"""Candidate merging C(Q) = ∪ R(q, k) over the planner's sub-queries (paper §3.1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ensemble.domain import IntentDimension


def merge_candidates(retrieved: Sequence[tuple[Sequence[IntentDimension], Sequence[Mapping[str, Any]]]]
                     ) -> list[dict[str, Any]]:
    """Union of the per-sub-query result lists, deduplicated by ``id``.

    `retrieved` holds, per sub-query, its intent dimensions and its top-k documents (dicts with an
    ``id``). Documents keep their first-seen order; a document reached by several sub-queries keeps
    every dimension that reached it, in first-seen order, added to any it already carried.
    """
    merged: dict[str, dict[str, Any]] = {}
    for dimensions, documents in retrieved:
        for document in documents:
            doc_id = document["id"]
            entry = merged.get(doc_id)
            if entry is None:
                entry = dict(document)
                entry["intent_dimensions"] = [IntentDimension(d).value
                                              for d in document.get("intent_dimensions", ())]
                merged[doc_id] = entry
            for dimension in dimensions:
                value = IntentDimension(dimension).value
                if value not in entry["intent_dimensions"]:
                    entry["intent_dimensions"].append(value)
    return list(merged.values())
