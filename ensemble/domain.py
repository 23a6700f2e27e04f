"""Closed vocabularies of the paper: query types and intent dimensions."""

from __future__ import annotations

from enum import Enum


class QueryType(str, Enum):
    COMPLEX = "Complex Query"
    BROAD_NEEDS = "Broad-needs Query"
    SIMPLE = "Simple Query"


class IntentDimension(str, Enum):
    HIGH_FRESHNESS = "High Freshness"
    AUTHORITATIVENESS = "Authoritativeness"
    PERSONAL_EXPERIENCE = "Personal Experience"


def normalise_label(text: str) -> str:
    """Lower-case, unify separators: ``"Broad-Needs query"`` -> ``"broad needs query"``."""
    return " ".join(text.replace("-", " ").replace("_", " ").lower().split())
