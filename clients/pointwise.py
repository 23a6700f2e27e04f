"""What the client sends `pointwise_grader` and reads back: a row per candidate (clients/rerank_client.py calls it)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient

from ensemble import tensors as T
from ensemble.pointwise.answer import known


@dataclass(frozen=True, slots=True)
class PointwiseGrade:
    id: str
    grade: int | None
    """On the grader's scale (config [pointwise]); None when the model gave no usable grade."""
    reasoning: str


POINTWISE_ROWS_PER_CALL = 32
"""Pairs per `pointwise_grader` request: within every profile's max_batch_size (64 on cpu and a10)."""


def pointwise_inputs(query: str, candidates: Sequence[Mapping[str, Any]], grader: str,
                     cover_images: Sequence[bytes] | None = None) -> list[grpcclient.InferInput]:
    """One row per candidate (the batch dimension): query, candidate JSON, grader and cover (b"": none)."""
    def column(spec: T.TensorSpec, values: Sequence[bytes]) -> grpcclient.InferInput:
        array = np.empty((len(values), 1), dtype=np.object_)
        array[:, 0] = list(values)
        tensor = grpcclient.InferInput(spec.name, list(array.shape), spec.wire_dtype)
        tensor.set_data_from_numpy(array)
        return tensor

    n = len(candidates)
    inputs = [column(T.QUERY, [query.encode("utf-8")] * n),
              column(T.CANDIDATE, [json.dumps(dict(c), ensure_ascii=False).encode("utf-8") for c in candidates]),
              column(T.GRADER, [grader.encode("utf-8")] * n)]
    if cover_images is not None:
        inputs.append(column(T.IMAGE, list(cover_images)))
    return inputs


def covers_of(candidates: Sequence[Mapping[str, Any]],
               cover_images: Mapping[str, bytes] | Sequence[bytes] | None) -> list[bytes] | None:
    if cover_images is None or isinstance(cover_images, Sequence):
        return None if cover_images is None else list(cover_images)
    return [cover_images.get(str(c["id"]), b"") for c in candidates]


def pointwise_grades(result, candidates: Sequence[Mapping[str, Any]]) -> list[PointwiseGrade]:
    grades = result.as_numpy("grade").reshape(-1).tolist()
    reasons = [bytes(v).decode("utf-8") for v in result.as_numpy("reasoning").reshape(-1)]
    return [PointwiseGrade(str(c["id"]), known(int(g)), r)
            for c, g, r in zip(candidates, grades, reasons)]
