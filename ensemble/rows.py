"""Batch rows: per-row arrays (batch dimension removed) stacked back into batched tensors.

Shared by the Triton adapter (a model's responses) and the in-process caller (an engine slot's batched request).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ensemble.tensors import TensorSpec

Arrays = dict[str, np.ndarray]


def stack_rows(rows: Sequence[Arrays], specs: Iterable[TensorSpec]) -> Arrays:
    """The tensors of `specs` that the rows hold, batched; ragged dims are padded (0, or b"" for BYTES) as
    tensorrt_llm does, so a reader needs the lengths (``input_lengths``, ``sequence_length``)."""
    out: Arrays = {}
    for spec in specs:
        if spec.name not in rows[0]:
            continue
        parts = [np.asarray(row[spec.name], dtype=spec.numpy_dtype) for row in rows]
        shape = tuple(max(p.shape[d] for p in parts) for d in range(parts[0].ndim))
        if all(p.shape == shape for p in parts):
            out[spec.name] = np.stack(parts)
            continue
        padded = np.full((len(parts),) + shape, b"" if spec.dtype == "TYPE_STRING" else 0, dtype=spec.numpy_dtype)
        for index, part in enumerate(parts):
            padded[(index,) + tuple(slice(0, n) for n in part.shape)] = part
        out[spec.name] = padded
    return out
