"""verl's custom reward function: ``custom_reward_function.path=rewards/verl.py``,
``custom_reward_function.name=compute_score``.

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` per response, with
`ground_truth` from the dataset's ``reward_model.ground_truth``:
- ``data_source`` ``"rmr/rerank"``: ground_truth ``{"candidate_ids": [...prompt order...], "label": [...best
  first...]}`` (a dict, or the same as a JSON string);
- ``"rmr/cover_relevance"`` or ``"rmr/cover_quality"``: the grade 1-4 (an int, a digit string, or
  ``{"grade": 3}``).
Returns a dict: ``score`` (R = format + task, what verl optimises) and its parts, which verl logs.
"""

from __future__ import annotations

import json
from typing import Any

from rewards.paper import grade_reward, rerank_reward

RERANK, COVER_RELEVANCE, COVER_QUALITY = "rmr/rerank", "rmr/cover_relevance", "rmr/cover_quality"


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None
                  ) -> dict[str, float]:
    truth = json.loads(ground_truth) if isinstance(ground_truth, str) and ground_truth.lstrip()[:1] in "{[" \
        else ground_truth
    if data_source == RERANK:
        reward = rerank_reward(solution_str, [str(i) for i in truth["candidate_ids"]], [str(i) for i in truth["label"]])
    elif data_source in (COVER_RELEVANCE, COVER_QUALITY):
        grade = truth["grade"] if isinstance(truth, dict) else truth
        reward = grade_reward(solution_str, int(grade))
    else:
        raise ValueError(f"data_source must be one of {RERANK}, {COVER_RELEVANCE}, {COVER_QUALITY}; "
                         f"got {data_source!r}")
    return {"score": reward.total, "format": reward.format, "task": reward.task}
