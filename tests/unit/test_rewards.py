"""The trainers' rewards follow the paper strictly (eq. 7-11), through each trainer's own calling convention."""

import json

import pytest

from ensemble.metrics import RerankRewardWeights, rerank_task_reward
from rewards.paper import grade_reward, load_weights, rerank_reward
from rewards.trl import grade_rewards, rerank_rewards
from rewards.verl import compute_score

IDS, LABEL = ["a", "b", "c", "d"], ["c", "a", "d", "b"]
PERFECT = "<think>c first</think><answer>[3,1,4,2]</answer>"  # prompt positions of c, a, d, b


@pytest.mark.parametrize(("completion", "format_reward", "task"), [
    ("<think>clear match</think><answer>3</answer>", 0.5, 1.0),
    ("<thinking>clear match</thinking><answer>4</answer>", 0.5, 0.7),   # the project's prompt's tag, off by one
    ("<think>x</think><answer>2</answer>", 0.5, 0.4),                   # off by one across the 2|3 boundary
    ("<think>x</think><answer>2.5</answer>", 0.3, 0.0),                 # eq. 7: a non-integer answer
    ("4", 0.0, 0.0),                       # a bare grade has no paired tags: no format reward (serving reads it)
    ("<answer>3</answer>", 0.0, 0.0),      # no reasoning block
    # eq. 7: paired tags and an answer extracted, but not an integer grade: the partial format reward, no task
    # reward (serving reads "Rating: 3" leniently; a trainer rewards only the bare integer fully)
    ("<think>x</think><answer>Rating: 3</answer>", 0.3, 0.0),
    ("<think>x</think><answer>three</answer>", 0.3, 0.0),
    ("<think>x</think><answer>**3**</answer>", 0.3, 0.0),
    ("<think>x</think><answer>7</answer>", 0.3, 0.0),                   # an integer off the four grades
    ("<think>x</think><answer> </answer>", 0.0, 0.0),                   # nothing to extract: no valid answer
    ("<think>x</think><answer>3</answer> trailing", 0.0, 0.0),
])
def test_grade_reward_is_format_plus_task_and_strict(completion, format_reward, task):
    reward = grade_reward(completion, 3)
    assert (reward.format, reward.task) == (format_reward, pytest.approx(task))
    assert reward.total == pytest.approx(format_reward + task)


def test_rerank_reward_maps_prompt_positions_to_label_ids():
    weights = RerankRewardWeights(0.2, 0.2, 0.2, 0.2, 0.2)
    reward = rerank_reward(PERFECT, IDS, LABEL, weights, p=0.9)
    assert reward.format == 0.5
    assert reward.task == pytest.approx(rerank_task_reward(LABEL, LABEL, weights, p=0.9))
    worse = rerank_reward("<think>x</think><answer>[2,4,1,3]</answer>", IDS, LABEL, weights, p=0.9)
    assert worse.format == 0.5 and worse.task < reward.task


def test_rerank_reward_scores_a_repaired_list_as_written():
    weights = RerankRewardWeights(0.2, 0.2, 0.2, 0.2, 0.2)
    reward = rerank_reward("<think>x</think><answer>[3,3,1]</answer>", IDS, LABEL, weights, p=0.9)
    assert reward.format == 0.2  # eq. 9: duplicate and missing ids
    assert reward.task == pytest.approx(rerank_task_reward(["c", "a"], LABEL, weights, p=0.9))
    assert rerank_reward("<think>x</think><answer>The final ranking is [3,1,4,2].</answer>",
                         IDS, LABEL, weights, p=0.9).total == 0.0


def test_gamma_weights_come_from_configuration(tmp_path, monkeypatch):
    (tmp_path / "w.toml").write_text("[rerank]\nndcg10 = 0\nrecall10 = 0\nrbo = 0\nndcg4 = 1\nrecall4 = 0\n"
                                     "rbo_p = 0.8\n")
    monkeypatch.setenv("RMR_REWARD_WEIGHTS", str(tmp_path / "w.toml"))
    weights, p = load_weights()
    assert weights == RerankRewardWeights(0, 0, 0, 1, 0) and p == 0.8
    assert rerank_reward(PERFECT, IDS, LABEL).task == pytest.approx(1.0)  # NDCG@4 alone, perfect
    (tmp_path / "w.toml").write_text("[rerank]\nndgc10 = 1\n")
    with pytest.raises(ValueError, match="ndgc10"):
        load_weights()


def test_verl_compute_score_signature_and_ground_truth_forms():
    truth = {"candidate_ids": IDS, "label": LABEL}
    as_dict = compute_score("rmr/rerank", PERFECT, truth)
    assert as_dict == compute_score("rmr/rerank", PERFECT, json.dumps(truth), extra_info={"index": 0})
    assert as_dict["score"] == pytest.approx(as_dict["format"] + as_dict["task"]) and as_dict["format"] == 0.5
    for truth in (3, "3", {"grade": 3}):
        assert compute_score("rmr/cover_quality", "<think>x</think><answer>3</answer>", truth)["score"] == 1.5
    with pytest.raises(ValueError, match="data_source"):
        compute_score("gsm8k", "x", "1")


def test_trl_reward_functions_score_their_own_rows_of_a_mixed_batch():
    completions = [[{"role": "assistant", "content": PERFECT}],                       # conversational
                   "<think>x</think><answer>3</answer>"]                               # standard
    kwargs = {"prompts": ["p1", "p2"], "candidate_ids": [IDS, None], "label": [LABEL, None], "grade": [None, 3]}
    rerank = rerank_rewards(completions, **kwargs)
    grades = grade_rewards(completions, **kwargs)
    assert rerank[0] == pytest.approx(rerank_reward(PERFECT, IDS, LABEL).total) and rerank[1] is None
    assert grades == [None, 1.5]
    assert rerank_rewards(["x"], prompts=["p"]) == [None]  # a dataset without re-rank columns
