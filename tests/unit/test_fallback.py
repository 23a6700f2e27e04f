from datetime import datetime, timedelta, timezone

from ensemble.domain import IntentDimension as D
from ensemble.fallback import fallback_order
from ensemble.request import Candidate


def c(i, title, content="", **kw):
    return Candidate(id=str(i), title=title, content=content, **kw)


def test_relevant_before_irrelevant():
    order = fallback_order("Beijing travel guide", [c(1, "Pasta recipe"), c(2, "Beijing travel guide 2025")])
    assert order == [2, 1]


def test_chinese_query_matches_by_characters():
    order = fallback_order("北京旅游攻略", [c(1, "上海美食推荐"), c(2, "北京旅游全攻略")])
    assert order == [2, 1]


def test_redundant_copy_is_pushed_below_new_information():
    base = "Beijing travel guide: Forbidden City, Great Wall, hutongs"
    candidates = [c(1, "Beijing travel guide", base), c(2, "Beijing travel guide", base),
                  c(3, "Beijing travel food guide", "Peking duck and street food in Beijing")]
    order = fallback_order("Beijing travel guide", candidates)
    assert order[0] == 1 and order.index(3) < order.index(2)


def test_tie_broken_by_cover_grades_and_rates():
    low = c(1, "Beijing guide", cover_relevance=1, cover_quality=1, click_through_rate=0.01)
    high = c(2, "Beijing guide", cover_relevance=4, cover_quality=4, click_through_rate=0.3)
    assert fallback_order("Beijing guide", [low, high])[0] == 2


def test_freshness_intent_prefers_recent():
    now = datetime(2025, 6, 1, tzinfo=timezone.utc)
    old = c(1, "Beijing concert schedule", publish_time=now - timedelta(days=60), intent_dimensions=(D.HIGH_FRESHNESS,))
    new = c(2, "Beijing concert schedule", publish_time=now, intent_dimensions=(D.HIGH_FRESHNESS,))
    assert fallback_order("Beijing concert schedule", [old, new]) == [2, 1]


def test_full_ties_keep_input_order_and_result_is_a_permutation():
    same = [c(i, "x") for i in range(1, 8)]
    assert fallback_order("unrelated", same) == list(range(1, 8))


def test_deterministic():
    candidates = [c(i, f"title {i % 3}", f"content {i}") for i in range(1, 21)]
    assert fallback_order("title 1", candidates) == fallback_order("title 1", candidates)
    assert sorted(fallback_order("title 1", candidates)) == list(range(1, 21))
