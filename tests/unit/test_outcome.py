"""The re-rank outcome as a value, serialised at the edge (ensemble/rerank/outcome.py)."""

from ensemble.rerank.answer import Repair, RepairKind, parse_permutation
from ensemble.rerank.outcome import NO_USABLE_RANKING, RerankOutcome


def test_outcome_survives_its_json_form():
    report = parse_permutation("<answer>[2,2,9]</answer>", 3, fill_order=[3, 1, 2])
    outcome = RerankOutcome.from_report(report, output_tokens=7, thinking_budget=16, budget_forced=False,
                                        constrained=True)
    assert outcome.repairs == (Repair(RepairKind.DUPLICATE_ID, (2,)), Repair(RepairKind.INVALID_ID, (9,)),
                               Repair(RepairKind.MISSING_IDS, (3, 1)))
    data = outcome.to_json_dict()
    assert data["repairs"][0] == {"kind": "duplicate_id", "ids": [2], "message": "duplicate id 2 dropped"}
    assert RerankOutcome.from_json_dict(data) == outcome


def test_an_answer_without_ranking_is_the_fallback_rankers_and_says_so():
    outcome = RerankOutcome.from_report(parse_permutation("I cannot decide.", 2), output_tokens=4,
                                        thinking_budget=0, budget_forced=False, constrained=False)
    assert outcome.fallback and outcome.fallback_reason == NO_USABLE_RANKING
    assert [r.kind for r in outcome.repairs] == [RepairKind.NOT_A_LIST, RepairKind.FALLBACK_ORDER]


def test_repair_messages_are_derived_from_kind_and_ids():
    assert Repair(RepairKind.MISSING_IDS, (4, 1)).message == "missing ids [4, 1] appended"
    assert Repair(RepairKind.NO_ANSWER).message == "no answer"
