"""R = r_format + r_task for the re-rank task and both cover tasks (paper §3.3.3-3.3.4, eq. 7-11).

Strict where the paper is: the format reward needs a closed reasoning block (``<think>`` or the project's
prompt's ``<thinking>``) followed by a closed ``<answer>`` block, and an answer that is the bare integer or the
bare id list. What serving reads leniently ("The final ranking is [2,1,3].") earns no format reward here. A
grade answer in paired tags that is not an integer grade ("three", "3.5", 7) earns eq. (7)'s partial 0.3.
The re-rank's prompt ids are positions 1..n of `candidate_ids`; the label ranks the same ids, best first.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ensemble.cover.answer import GRADE_REWARD_NON_INTEGER, GRADE_REWARD_NONE, GRADE_REWARD_VALID
from ensemble.metrics import DEFAULT_RBO_P, RerankRewardWeights, grade_task_reward, rerank_task_reward
from ensemble.rerank.answer import PERMUTATION_REWARD_NONE, PERMUTATION_REWARD_REPAIRED, PERMUTATION_REWARD_VALID

WEIGHTS_ENV = "RMR_REWARD_WEIGHTS"
WEIGHTS_FILE = Path(__file__).with_name("weights.toml")

_SHAPE = re.compile(r"^\s*<(?P<tag>think|thinking)>.*?</(?P=tag)>\s*<answer>(?P<answer>.*?)</answer>\s*$",
                    re.DOTALL | re.IGNORECASE)
_INTEGER = re.compile(r"[+-]?\d{1,6}")
_ID_LIST = re.compile(r"\[\s*\d{1,4}\s*(?:,\s*\d{1,4}\s*){0,199}\]")


@dataclass(frozen=True)
class Reward:
    format: float
    task: float

    @property
    def total(self) -> float:
        return self.format + self.task


def strict_answer(completion: str) -> str | None:
    """The answer of ``<think>…</think><answer>…</answer>`` and nothing around it; None otherwise."""
    match = _SHAPE.match(completion)
    return match.group("answer").strip() if match else None


def grade_reward(completion: str, truth: int) -> Reward:
    """Eq. (7) + eq. (8) for a cover grade (relevance or quality, 1-4)."""
    answer = strict_answer(completion)
    if not answer:
        return Reward(GRADE_REWARD_NONE, 0.0)
    if _INTEGER.fullmatch(answer) and 1 <= int(answer) <= 4:
        return Reward(GRADE_REWARD_VALID, grade_task_reward(int(answer), truth))
    # Eq. (7): the tags paired and an answer extracted, but not one of the integer grades ("three", "3.5",
    # "**3**", 7): the partial format reward. Only a missing or empty answer is "no valid answer".
    return Reward(GRADE_REWARD_NON_INTEGER, 0.0)


def rerank_reward(completion: str, candidate_ids: Sequence[str], label: Sequence[str],
                  weights: RerankRewardWeights | None = None, *, p: float | None = None) -> Reward:
    """Eq. (9) + eq. (10)-(11). The answered positions are mapped to ids; duplicates after their first copy
    and positions outside 1..n are dropped and missing ids are not filled in, so a repaired list is scored
    as the model wrote it (format 0.2) and its task reward shows what it left out."""
    if weights is None or p is None:
        configured, configured_p = _configured_weights()
        weights, p = weights or configured, configured_p if p is None else p
    answer = strict_answer(completion)
    if not answer or not _ID_LIST.fullmatch(answer):
        return Reward(PERMUTATION_REWARD_NONE, 0.0)
    n = len(candidate_ids)
    positions = [int(v) for v in re.findall(r"\d{1,4}", answer)]
    kept: list[int] = []
    for position in positions:
        if 1 <= position <= n and position not in kept:
            kept.append(position)
    valid = len(kept) == len(positions) == n
    ranking = [candidate_ids[position - 1] for position in kept]
    task = rerank_task_reward(ranking, list(label), weights, p=p)
    return Reward(PERMUTATION_REWARD_VALID if valid else PERMUTATION_REWARD_REPAIRED, task)


def _weights_source(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get(WEIGHTS_ENV) or WEIGHTS_FILE)


def _configured_weights() -> tuple[RerankRewardWeights, float]:
    """`load_weights()`, read again only when the file named changes: a trainer scores thousands of completions."""
    source = _weights_source()
    return _weights_of(str(source), source.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _weights_of(path: str, mtime_ns: int) -> tuple[RerankRewardWeights, float]:
    return load_weights(path)


def load_weights(path: str | Path | None = None) -> tuple[RerankRewardWeights, float]:
    """(γ1..γ5, RBO's p) from `path`, else $RMR_REWARD_WEIGHTS, else rewards/weights.toml."""
    source = _weights_source(path)
    table = tomllib.loads(source.read_text(encoding="utf-8")).get("rerank", {})
    p = float(table.pop("rbo_p", DEFAULT_RBO_P))
    unknown = set(table) - set(RerankRewardWeights.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{source}: unknown [rerank] weights {sorted(unknown)}")
    return RerankRewardWeights(**{k: float(v) for k, v in table.items()}), p
