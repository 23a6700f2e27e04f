"""Numpy arrays as the steps see them (one batch row, batch dimension removed) and back into batches.

Shared by the steps, the Triton adapter (a model's responses) and the in-process caller (an engine slot's
batched request).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ensemble.errors import RequestError
from ensemble.tensors import TensorSpec

Arrays = dict[str, np.ndarray]


def scalar_bytes(inputs: Arrays, name: str) -> bytes:
    """The single element of a BYTES[1] input."""
    array = inputs[name]
    if array.size != 1:
        raise RequestError(name, "must hold exactly one element", value=f"shape {list(array.shape)}")
    value = array.reshape(-1)[0]
    if isinstance(value, str):
        return value.encode("utf-8")
    if not isinstance(value, (bytes, np.bytes_)):
        raise RequestError(name, "must be BYTES", value=type(value).__name__)
    return bytes(value)


def bytes_list(inputs: Arrays, name: str) -> list[bytes]:
    """Every element of an optional BYTES input ([] when absent)."""
    array = inputs.get(name)
    if array is None:
        return []
    return [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in array.reshape(-1)]


def as_bytes(text: str) -> np.ndarray:
    """A BYTES[1] output holding `text`."""
    return np.array([text.encode("utf-8")], dtype=np.object_)


def generated_ids(inputs: Arrays, vocab_size: int) -> list[int]:
    """Generated token ids of beam 0 (``output_ids`` read to ``sequence_length``), each checked to be a token:
    a post step can be called directly, with anything in these tensors."""
    output_ids, lengths = inputs["output_ids"], inputs["sequence_length"]
    if output_ids.size == 0 or lengths.size == 0:
        return []
    ids = output_ids.reshape(-1, output_ids.shape[-1])[0][: max(0, int(lengths.reshape(-1)[0]))]
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise RequestError("output_ids", f"must be token ids in [0, {vocab_size})",
                           value=int(ids.min() if ids.min() < 0 else ids.max()))
    return ids.tolist()


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
