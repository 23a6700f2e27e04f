"""Prompt text -> the checkpoint tokenizer's ids (no special tokens added), as fast as stays exact."""

from __future__ import annotations

import re
import weakref
from itertools import chain
from typing import Any

from ensemble.fast_bpe import exact_tiktoken
from ensemble.template import Tokenizer

# A newline followed by a non-space character: no Qwen pre-token spans it, so text cut there encodes to the
# same ids piece by piece as whole (tests/unit/test_prompt_encoding.py checks it on arbitrary text).
_SAFE_CUT = re.compile(r"\n(?=\S)")
CHUNKED_FROM_CHARS = 2048
"""Texts this long are encoded in pieces, in parallel."""


def _pieces(text: str) -> list[str]:
    """`text` cut after every newline that a non-space character follows (a split is cheaper than a
    look-behind regex)."""
    parts = _SAFE_CUT.split(text)
    last = parts.pop()
    pieces = [part + "\n" for part in parts]
    pieces.append(last)
    return pieces


def _encode_pieces(backend: Any, pieces: list[str]) -> list[list[int]]:
    """Ids of each piece from the Rust tokenizer, in parallel (Rust threads, GIL released). The `transformers`
    wrapper is skipped, and so are character offsets where the tokenizer can (`encode_batch_fast`,
    tokenizers >= 0.20)."""
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    return [e.ids for e in encode(pieces, add_special_tokens=False)]


def encode_text(tokenizer: Tokenizer, text: str) -> list[int]:
    """Token ids without added special tokens, from the checkpoint's tokenizer; long texts in pieces."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return list(tokenizer.encode(text, add_special_tokens=False))
    if len(text) < CHUNKED_FROM_CHARS:
        return backend.encode(text, add_special_tokens=False).ids
    return list(chain.from_iterable(_encode_pieces(backend, _pieces(text))))


class PromptEncoder:
    """tiktoken where it gives the tokenizer's exact ids (ensemble/fast_bpe.py: Qwen's tokenizers), else
    `encode_text`. `bench.step_costs` measures both."""

    _built: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    """tokenizer -> (tiktoken encode or None, why not): building one reads the whole vocabulary (~1 s)."""

    def __init__(self, tokenizer: Tokenizer, *, fast_bpe: bool = True) -> None:
        self.tokenizer = tokenizer
        if not fast_bpe:
            self._fast, self.refused = None, "fast_bpe is off"
            return
        if tokenizer not in self._built:
            self._built[tokenizer] = exact_tiktoken(tokenizer)
        self._fast, self.refused = self._built[tokenizer]

    def __call__(self, text: str) -> list[int]:
        return self._fast(text) if self._fast is not None else encode_text(self.tokenizer, text)

    def describe(self) -> str:
        return "tiktoken (exact for this tokenizer)" if self._fast is not None else f"tokenizers ({self.refused})"
