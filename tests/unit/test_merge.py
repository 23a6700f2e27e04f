from ensemble.domain import IntentDimension as D
from ensemble.merge import merge_candidates


def test_union_dedupes_by_id_and_keeps_every_dimension():
    merged = merge_candidates([
        ([D.AUTHORITATIVENESS], [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}]),
        ([D.PERSONAL_EXPERIENCE, D.HIGH_FRESHNESS], [{"id": "b", "title": "B again"}, {"id": "c", "title": "C"}]),
        ([D.AUTHORITATIVENESS], [{"id": "c", "title": "C"}]),
    ])
    assert [d["id"] for d in merged] == ["a", "b", "c"]
    assert merged[1]["title"] == "B"  # first-seen copy wins
    assert merged[1]["intent_dimensions"] == ["Authoritativeness", "Personal Experience", "High Freshness"]
    assert merged[2]["intent_dimensions"] == ["Personal Experience", "High Freshness", "Authoritativeness"]


def test_empty_input():
    assert merge_candidates([]) == []
    assert merge_candidates([([D.HIGH_FRESHNESS], [])]) == []


def test_existing_dimensions_are_kept_and_input_not_mutated():
    doc = {"id": "a", "intent_dimensions": ["High Freshness"]}
    merged = merge_candidates([([D.AUTHORITATIVENESS], [doc])])
    assert merged[0]["intent_dimensions"] == ["High Freshness", "Authoritativeness"]
    assert doc["intent_dimensions"] == ["High Freshness"]
