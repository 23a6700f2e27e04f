"""The [2, L] word-list tensor of TensorRT-LLM's `stop_words_list` / `bad_words_list`.

Row 0 holds the token ids of every word back to back (padded with 0); row 1 the cumulative end offset
of each word (padded with -1), as tensorrtllm_backend's preprocessing `_to_word_list_format` builds it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def to_word_list(words: Sequence[Sequence[int]]) -> np.ndarray:
    """``[[1, 2], [3]]`` -> ``[[1, 2, 3], [2, 3, -1]]``."""
    words = [list(w) for w in words if len(w)]
    flat = [t for w in words for t in w]
    offsets = list(np.cumsum([len(w) for w in words])) if words else []
    width = max(1, len(flat))
    out = np.zeros((2, width), dtype=np.int32)
    out[1, :] = -1
    out[0, : len(flat)] = flat
    out[1, : len(offsets)] = offsets
    return out


def from_word_list(array: np.ndarray) -> list[list[int]]:
    """The inverse of `to_word_list`."""
    if array.size == 0:
        return []
    flat, offsets = array[0].tolist(), [o for o in array[1].tolist() if o >= 0]
    words, start = [], 0
    for end in offsets:
        words.append(flat[start:end])
        start = end
    return words
