"""tiktoken standing in for a Hugging Face byte-level BPE tokenizer, where it gives the same ids.

Qwen's BPE began as a tiktoken vocabulary (ids are ranks), so tiktoken encodes Qwen2.5 / Qwen3 prompts
exactly, and faster than `tokenizers` (`python -m bench.step_costs` compares the two). It is used only where the tokenizer's own description shows it can be exact, and after a
self-check against the tokenizer on mixed text; anything else keeps the tokenizer (and says why).

Conditions, read from the tokenizer's JSON: a BPE model without dropout, unknown token, prefixes, suffixes or
byte fallback; no normalizer or NFC (applied before tiktoken, as Qwen's own tiktoken tokenizer did); a
pre-tokenizer that is one regex split (isolated) followed by byte-level mapping without its own regex; added
tokens matched verbatim (not normalized, no strip, not single-word); merges whose results rank in merge order.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from typing import Any

SELF_CHECK = (
    "北京旅游攻略：故宫门票预约、长城一日游。Beijing travel guide, 2025-09-12 08:00, 14.0% click-through.\n"
    "<|im_start|>user\n[ID] 12\n[Title] iPhone 15 vs Huawei Mate 60 — which one?\n  indented\t\ttabs\n\n"
    "It's  they'll  WE'D  don't… ①②③ ｆｕｌｌｗｉｄｔｈ café Café e\u0301 ﬁ 🚀🚀 😀\u200d🙂 <|im_end|>\n<|im_start|>assistant\n"
    "<thinking></thinking>\n<answer>[3,1,5,2,4]</answer>  \r\n trailing   "
)
"""Scripts, digits, contractions, whitespace runs, combining marks, emoji and the chat's special tokens."""


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, character -> byte (the inverse of `bytes_to_unicode`)."""
    visible = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars = list(visible)
    extra = 0
    for b in range(256):
        if b not in visible:
            visible.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(visible, chars)}


def _refusal(spec: dict[str, Any]) -> str | None:
    """Why tiktoken cannot stand in for this tokenizer, or None."""
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        return f"model is {model.get('type')}, not BPE"
    for key in ("dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            return f"BPE has {key}"
    if model.get("byte_fallback"):
        return "BPE uses byte fallback"
    normalizer = spec.get("normalizer")
    if normalizer is not None and normalizer.get("type") != "NFC":
        return f"normalizer {normalizer.get('type')} is not NFC"
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    if [s.get("type") for s in steps] != ["Split", "ByteLevel"]:
        return f"pre-tokenizer is {[s.get('type') for s in steps]}, not a regex split then byte level"
    split, byte_level = steps
    if "Regex" not in split.get("pattern", {}) or split.get("behavior") != "Isolated" or split.get("invert"):
        return "pre-tokenizer split is not an isolated regex"
    if byte_level.get("add_prefix_space") or byte_level.get("use_regex"):
        return "byte-level pre-tokenizer adds a prefix space or its own regex"
    for token in spec.get("added_tokens", []):
        if token.get("normalized") or token.get("lstrip") or token.get("rstrip") or token.get("single_word"):
            return f"added token {token.get('content')!r} is not matched verbatim"
    return None


@dataclass(frozen=True)
class ExactBPE:
    """A tokenizer's encoding through tiktoken; call it for the ids of `text` (no special tokens added)."""

    encoding: Any
    nfc: bool
    """The tokenizer normalizes to NFC first."""

    def _normalized(self, text: str) -> str:
        return unicodedata.normalize("NFC", text) if self.nfc else text

    def __call__(self, text: str) -> list[int]:
        """Added tokens written in `text` are read as such."""
        return self.encoding.encode(self._normalized(text), allowed_special="all")

    def ordinary(self, text: str) -> list[int]:
        """Added-token strings in `text` are encoded as the characters they are."""
        return self.encoding.encode_ordinary(self._normalized(text))


def exact_tiktoken(tokenizer: Any) -> tuple[ExactBPE | None, str]:
    """(encoding, "") when tiktoken gives this tokenizer's ids (no special tokens added), else (None, reason)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None, "not a fast (Rust) tokenizer"
    try:
        import tiktoken
    except ImportError:
        return None, "tiktoken is not installed"
    spec = json.loads(backend.to_str())
    reason = _refusal(spec)
    if reason:
        return None, reason
    model = spec["model"]
    to_byte = _byte_decoder()
    try:
        ranks = {bytes(to_byte[ch] for ch in token): rank for token, rank in model["vocab"].items()}
    except KeyError:
        return None, "vocabulary has tokens outside the byte-level alphabet"
    vocab = model["vocab"]
    last = -1
    for merge in model.get("merges", []):
        left, right = merge if isinstance(merge, list) else merge.split(" ", 1)
        rank = vocab.get(left + right)
        if rank is None or rank < last:
            return None, f"merge {left!r} + {right!r} does not rank in merge order"
        last = rank
    special = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    try:
        pattern = spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"]  # the split _refusal checked
        encoding = tiktoken.Encoding("checkpoint", pat_str=pattern, mergeable_ranks=ranks, special_tokens=special)
    except ValueError as exc:  # a regex tiktoken's engine does not accept
        return None, f"tiktoken refuses the tokenizer: {exc}"
    encode = ExactBPE(encoding, nfc=spec.get("normalizer") is not None)
    for line in SELF_CHECK.splitlines(keepends=True) + [SELF_CHECK]:
        if encode(line) != backend.encode(line, add_special_tokens=False).ids:
            return None, f"self-check differs on {line[:40]!r}"
    return encode, ""
