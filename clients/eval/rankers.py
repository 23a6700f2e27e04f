"""What `rmr eval` ranks with: a running deployment (over gRPC), or a floor every model must beat.

Floors: the fallback ranker the server answers with when the model fails, the input order, a seeded random
order. Ablations (the paper's Table 2) are request options of the deployment, so one server runs them all.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clients.eval.labelled import LabelledQuery
from ensemble.candidate import REQUEST_FIELDS, candidate_from_json
from ensemble.fallback import fallback_order

ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},
    "no_covers": {"evaluate_covers": False},
    "relevance_only": {"prompt": "relevance_only"},
    "no_thinking": {"thinking_budget": 0},
}
"""Table 2's rows as request options. ``no_covers`` also strips grades the file gives and sends no image."""
MODES: dict[str, dict[str, Any]] = {
    "pointwise_rank": {"pointwise": "rank"},
    "pointwise_signal": {"pointwise": "signal"},
    "experience_rank": {"pointwise": "rank", "grader": "experience"},
    "experience_signal": {"pointwise": "signal", "grader": "experience"},
    "post_rank": {"post_rank": True},
}
"""Ranking modes past the paper's: pointwise grades alone, or as a listwise signal (ensemble/pointwise/); the re-rank
with its head post-ranked from the candidates' `features` (ensemble/postrank/)."""
FLOORS = ("fallback", "input", "random")

Ranking = Callable[[LabelledQuery, list[dict[str, Any]]], tuple[list[str], dict[str, Any]]]
"""(query, candidates in the order to present) -> (ids best first, what the ranker said about it)."""


def floor(name: str, seed: int = 0) -> Ranking:
    rng = random.Random(seed)

    def rank(item: LabelledQuery, candidates: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
        ids = [str(c["id"]) for c in candidates]
        if name == "input":
            return ids, {}
        if name == "random":
            return rng.sample(ids, len(ids)), {}
        parsed = [candidate_from_json(c) for c in candidates]  # read_rerank_set has validated each
        return [ids[i - 1] for i in fallback_order(item.query, parsed)], {}

    if name not in FLOORS:
        raise ValueError(f"ranker must be one of {FLOORS}, got {name!r}")
    return rank


def deployment(client: Any, ablation: str = "full") -> Ranking:
    """The deployment's `rich_media_reranker` under one of `ABLATIONS` or `MODES`."""
    options = dict({**ABLATIONS, **MODES}[ablation])
    covers_off = ablation == "no_covers"

    def rank(item: LabelledQuery, candidates: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
        request, covers = [], {}
        for candidate in candidates:
            fields = {k: v for k, v in candidate.items() if k in REQUEST_FIELDS}
            if covers_off:
                fields.pop("cover_relevance", None)
                fields.pop("cover_quality", None)
            elif candidate.get("cover_path"):
                covers[str(candidate["id"])] = Path(candidate["cover_path"]).read_bytes()
            request.append(fields)
        result = client.rerank(item.query, request, cover_images=covers or None, options=options or None)
        response = result.response
        said = {"valid": response.get("valid"), "fallback": response.get("fallback"),
                "ranked_by": response.get("ranked_by"),
                "repairs": [r["kind"] for r in response.get("repairs", [])]}
        return list(result.ranked_ids), said

    return rank
