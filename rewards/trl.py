"""Reward functions for TRL's ``GRPOTrainer(reward_funcs=[...])``.

TRL calls each with ``prompts`` and ``completions`` (strings, or message lists in the conversational format)
and every other dataset column as a keyword list, one value per completion; each returns one float per
completion (None where it does not apply, which TRL skips). The dataset holds:
- re-rank rows: ``candidate_ids`` (prompt order) and ``label`` (ids, best first);
- cover rows: ``grade`` (1-4).
A dataset mixing tasks passes both functions: each scores its own rows and gives None to the others.
"""

from __future__ import annotations

from typing import Any

from rewards.paper import grade_reward, rerank_reward


def _text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if m.get("role") == "assistant")


def rerank_rewards(completions: list[Any], candidate_ids: list[Any] | None = None, label: list[Any] | None = None,
                   **_: Any) -> list[float | None]:
    """R of eq. (9)-(11) for each completion of a re-rank row."""
    if candidate_ids is None or label is None:
        return [None] * len(completions)
    return [None if ids is None or truth is None else
            rerank_reward(_text(c), [str(i) for i in ids], [str(i) for i in truth]).total
            for c, ids, truth in zip(completions, candidate_ids, label)]


def grade_rewards(completions: list[Any], grade: list[Any] | None = None, **_: Any) -> list[float | None]:
    """R of eq. (7)-(8) for each completion of a cover row."""
    if grade is None:
        return [None] * len(completions)
    return [None if g is None else grade_reward(_text(c), int(g)).total for c, g in zip(completions, grade)]
