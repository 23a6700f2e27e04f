import pytest

from ensemble.metrics import (RerankRewardWeights, grade_task_reward, ndcg_at_k, rbo, recall_at_k,
                              rerank_task_reward)

LABEL = ["a", "b", "c", "d"]  # n = 4, rel(a)=3, rel(b)=2, rel(c)=1, rel(d)=0


def test_ndcg_identical_is_one():
    assert ndcg_at_k(LABEL, LABEL, 2) == pytest.approx(1.0)
    assert ndcg_at_k(LABEL, LABEL, 4) == pytest.approx(1.0)


def test_ndcg_swapped_top_two_by_hand():
    # IDCG@2 = 3/log2(2) + 2/log2(3) = 3 + 1.261860 = 4.261860
    # DCG@2 of [b, a] = 2/log2(2) + 3/log2(3) = 2 + 1.892789 = 3.892789
    assert ndcg_at_k(["b", "a", "c", "d"], LABEL, 2) == pytest.approx(3.892789 / 4.261860, rel=1e-6)


def test_ndcg_reversed_by_hand():
    # @2: d and c are not in label[:2] -> 0
    assert ndcg_at_k(list(reversed(LABEL)), LABEL, 2) == 0.0
    # @4: IDCG = 3 + 2/log2(3) + 1/2 + 0 = 4.761860; DCG = 0 + 1/log2(3) + 2/2 + 3/log2(5) = 2.922959
    assert ndcg_at_k(list(reversed(LABEL)), LABEL, 4) == pytest.approx(2.922959 / 4.761860, rel=1e-6)


def test_ndcg_k_beyond_length_uses_whole_list():
    assert ndcg_at_k(LABEL, LABEL, 10) == pytest.approx(1.0)


def test_recall_by_hand():
    assert recall_at_k(["b", "a", "c", "d"], LABEL, 1) == 0.0
    assert recall_at_k(["b", "a", "c", "d"], LABEL, 2) == 1.0
    assert recall_at_k(["d", "a", "c", "b"], LABEL, 2) == 0.5
    assert recall_at_k(list(reversed(LABEL)), LABEL, 4) == 1.0


def test_rbo_identical_is_truncated_sum():
    # (1-p) * (1 + p + p^2) = 1 - p^3 with p = 0.5
    assert rbo(["a", "b", "c"], ["a", "b", "c"], p=0.5) == pytest.approx(0.875)


def test_rbo_swapped_pair_by_hand():
    # A_1 = 0, A_2 = 1 -> (1 - 0.5) * (0 + 0.5 * 1) = 0.25
    assert rbo(["a", "b"], ["b", "a"], p=0.5) == pytest.approx(0.25)


@pytest.mark.parametrize("pred,label,expected", [
    # reference values of changyaochen/rbo rbo(p=0.9), ../shared/reference/rerankers.md section 4
    ("abcdefg", "zcavwxy", 0.151561),
    ("abcde", "bacde", 0.309510),
    ("abcde", "edcba", 0.147285),
    ([3, 1, 5, 2, 4], [1, 2, 3, 4, 5], 0.219285),
    ("abcdefghij", "abcdefghij", 0.651322),
])
def test_rbo_matches_reference_implementation(pred, label, expected):
    assert rbo(list(pred), list(label), p=0.9) == pytest.approx(expected, abs=1e-6)


def test_rbo_reversed_is_lower_than_identical():
    assert rbo(list(reversed(LABEL)), LABEL) < rbo(LABEL, LABEL)


def test_metrics_reject_bad_arguments():
    with pytest.raises(ValueError):
        ndcg_at_k(LABEL, LABEL, 0)
    with pytest.raises(ValueError):
        rbo(LABEL, LABEL, p=1.0)
    with pytest.raises(ValueError):
        ndcg_at_k(LABEL, ["a", "a"], 1)


@pytest.mark.parametrize("pred,truth,reward", [
    (3, 3, 1.0), (4, 3, 0.7), (1, 2, 0.7), (2, 3, 0.4), (3, 2, 0.4), (1, 3, 0.0), (4, 1, 0.0), (None, 2, 0.0),
])
def test_grade_task_reward_eq8(pred, truth, reward):
    assert grade_task_reward(pred, truth) == reward


def test_rerank_task_reward_weights_each_term():
    label = list(range(1, 13))
    assert rerank_task_reward(label, label, RerankRewardWeights(1, 0, 0, 0, 0)) == pytest.approx(1.0)
    only_rbo = rerank_task_reward(label, label, RerankRewardWeights(0, 0, 1, 0, 0), p=0.9)
    assert only_rbo == pytest.approx(1 - 0.9 ** 12)
    full = rerank_task_reward(label, label, RerankRewardWeights(0.5, 0.2, 0.1, 0.3, 0.4), p=0.9)
    assert full == pytest.approx(0.5 + 0.2 + 0.1 * (1 - 0.9 ** 12) + 0.3 + 0.4)
    # reversed: pred[:4] = 12..9 shares nothing with label[:4] = 1..4
    assert rerank_task_reward(list(reversed(label)), label, RerankRewardWeights(0, 0, 0, 1, 1)) == 0.0
