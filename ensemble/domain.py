"""Closed vocabularies of the paper: query types, intent dimensions, cover tasks and grades."""

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


class CoverTask(str, Enum):
    RELEVANCE = "relevance"
    QUALITY = "quality"


GRADES = (1, 2, 3, 4)
"""Cover grades; 1 = irrelevant / very poor, 4 = strongly relevant / high quality."""

UNKNOWN_GRADE = 0
"""How an absent grade travels in an INT32 tensor. Never a real grade."""


def normalise_label(text: str) -> str:
    """Lower-case, unify separators: ``"Broad-Needs query"`` -> ``"broad needs query"``."""
    return " ".join(text.replace("-", " ").replace("_", " ").lower().split())
