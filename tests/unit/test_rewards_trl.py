"""TRL's own calling path: one GRPO step of the tiny Qwen3 checkpoint, our reward functions as its reward_funcs."""

import trl


def test_one_grpo_step_calls_our_rewards_with_the_dataset_columns(tmp_path):
    from datasets import Dataset
    from transformers import AutoTokenizer

    from build.profile import resolve_checkpoints
    from rewards.trl import grade_rewards, rerank_rewards
    from tests.e2e.conftest import CACHE

    checkpoint = resolve_checkpoints("", "", "", str(CACHE)).reranker
    seen = []

    def spy(function):
        def reward(completions, **kwargs):
            values = function(completions, **kwargs)
            seen.append((function.__name__, sorted(kwargs), values))
            return values
        reward.__name__ = function.__name__
        return reward

    rows = [{"prompt": "Rank: [1] a [2] b", "candidate_ids": ["a", "b"], "label": ["b", "a"], "grade": None},
            {"prompt": "Grade this cover", "candidate_ids": None, "label": None, "grade": 3}]
    config = trl.GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, num_generations=2,
                            max_completion_length=8, max_steps=1, report_to=[], use_cpu=True, save_strategy="no",
                            logging_steps=1, bf16=False, fp16=False)
    trainer = trl.GRPOTrainer(model=checkpoint, reward_funcs=[spy(rerank_rewards), spy(grade_rewards)],
                              args=config, train_dataset=Dataset.from_list(rows),
                              processing_class=AutoTokenizer.from_pretrained(checkpoint))
    trainer.train()
    names = {name for name, _, _ in seen}
    assert names == {"rerank_rewards", "grade_rewards"}
    for name, columns, values in seen:
        assert {"candidate_ids", "label", "grade"} <= set(columns)
        assert all(v is None or isinstance(v, float) for v in values)
