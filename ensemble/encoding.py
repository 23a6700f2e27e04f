"""Prompt text -> the checkpoint tokenizer's ids (no special tokens added), exact and fast, where only the
template may produce special tokens.

Text that comes from a request (query, session, titles, contents) is marked while the prompt is assembled
(`PromptEncoder.mark`): every added-token string in it (``<|im_end|>``, ``<think>``, ...) becomes a placeholder.
Encoding the assembled prompt then splits it at the added tokens that remain, which only the template wrote,
and encodes the text between them as plain text, placeholders restored. A tokenizer splits its added tokens
out before anything else, so this gives exactly the ids of the whole text when the request holds no such
string; when it does, the string is encoded as the characters it is, never as the special token.
"""

from __future__ import annotations

import re
import weakref
from itertools import chain
from typing import Any

from ensemble.fast_bpe import exact_tiktoken
from ensemble.template import PRIVATE_MARK, Tokenizer

# A newline followed by a non-space character: no Qwen pre-token spans it, so text cut there encodes to the
# same ids piece by piece as whole (tests/unit/test_prompt_encoding.py checks it on arbitrary text).
_SAFE_CUT = re.compile(r"\n(?=\S)")
CHUNKED_FROM_CHARS = 2048
"""Texts this long are encoded in pieces, in parallel."""

_OPEN, _CLOSE = PRIVATE_MARK, "\ue001"
"""Private-use characters around a placeholder's index. An _OPEN in request text is itself escaped."""
_PLACEHOLDER = re.compile(f"{_OPEN}([0-9]+){_CLOSE}")


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
    """Token ids without added special tokens, from the checkpoint's tokenizer; long texts in pieces. Added
    tokens written in `text` are read as such: for trusted text only (`PromptEncoder.plain` for the rest)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return list(tokenizer.encode(text, add_special_tokens=False))
    if len(text) < CHUNKED_FROM_CHARS:
        return backend.encode(text, add_special_tokens=False).ids
    return list(chain.from_iterable(_encode_pieces(backend, _pieces(text))))


def added_tokens(tokenizer: Any) -> dict[str, int]:
    """Every token the tokenizer matches in text before its BPE (special or not), by its string."""
    vocab = getattr(tokenizer, "get_added_vocab", None)
    return dict(vocab()) if vocab is not None else {}


def _alternation(strings: list[str]) -> re.Pattern[str] | None:
    if not strings:
        return None
    return re.compile("|".join(re.escape(s) for s in sorted(strings, key=len, reverse=True)))


class PromptEncoder:
    """tiktoken where it gives the tokenizer's exact ids (ensemble/fast_bpe.py: Qwen's tokenizers), else the
    tokenizer itself. `bench.step_costs` measures both."""

    _built: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    """tokenizer -> (tiktoken encoding or None, why not): building one reads the whole vocabulary (~1 s)."""

    def __init__(self, tokenizer: Tokenizer, *, fast_bpe: bool = True) -> None:
        self.tokenizer = tokenizer
        self._backend = getattr(tokenizer, "backend_tokenizer", None)
        self.added = added_tokens(tokenizer)
        self._table = sorted(self.added) + [_OPEN]
        self._index = {text: index for index, text in enumerate(self._table)}
        self._template_tokens = _alternation(list(self.added))
        self._escaped = re.compile("|".join(re.escape(s) for s in sorted(self._table, key=len, reverse=True)))
        if not fast_bpe:
            self._fast, self.refused = None, "fast_bpe is off"
            return
        if tokenizer not in self._built:
            self._built[tokenizer] = exact_tiktoken(tokenizer)
        self._fast, self.refused = self._built[tokenizer]

    def describe(self) -> str:
        return "tiktoken (exact for this tokenizer)" if self._fast is not None else f"tokenizers ({self.refused})"

    def mark(self, text: str) -> str:
        """Request text made safe to put into a template: its added-token strings become placeholders."""
        if self._template_tokens is None or (_OPEN not in text and not self._template_tokens.search(text)):
            return text
        return self._escaped.sub(lambda m: f"{_OPEN}{self._index[m.group()]}{_CLOSE}", text)

    def __call__(self, text: str) -> list[int]:
        """The ids of an assembled prompt: added tokens only where the template wrote them."""
        if self._template_tokens is None:
            return self.plain(text)
        ids: list[int] = []
        start = 0
        for match in self._template_tokens.finditer(text):
            ids += self.plain(self.unmarked(text[start:match.start()]))
            ids.append(self.added[match.group()])
            start = match.end()
        ids += self.plain(self.unmarked(text[start:]))
        return ids

    def unmarked(self, text: str) -> str:
        """Marked text as it reads: placeholders back to the strings they hold."""
        return _PLACEHOLDER.sub(lambda m: self._table[int(m.group(1))], text) if _OPEN in text else text

    def plain(self, text: str) -> list[int]:
        """`text` as plain text: an added-token string in it is encoded as its characters."""
        if not text:
            return []
        if self._fast is not None:
            return self._fast.ordinary(text)
        if self._backend is None:
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        if self._template_tokens is None or not self._template_tokens.search(text):
            return encode_text(self.tokenizer, text)
        return self._bpe_only(text)

    def _bpe_only(self, text: str) -> list[int]:
        """The tokenizer's pipeline without its added-token matching: normalizer, pre-tokenizer, BPE."""
        backend = self._backend
        if backend.normalizer is not None:
            text = backend.normalizer.normalize_str(text)
        pieces = backend.pre_tokenizer.pre_tokenize_str(text) if backend.pre_tokenizer is not None else [(text, None)]
        return [token.id for piece, _ in pieces for token in backend.model.tokenize(piece)]
