"""Loading the checkpoint's tokenizer and the special ids the engines need."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ensemble.config import ConfigError

END_TOKEN = "<|im_end|>"
"""Qwen chat turns end here; the engines stop on it (TensorRT-LLM `end_id`)."""
STOP_WORDS = ("</answer>",)
"""Generation can stop once the answer is closed: nothing after it is read."""


@dataclass(frozen=True, slots=True)
class SpecialIds:
    end_id: int
    pad_id: int


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"tokenizer cannot be loaded from {path!r}: {exc}") from exc


def special_ids(tokenizer: Any) -> SpecialIds:
    end = tokenizer.convert_tokens_to_ids(END_TOKEN)
    if end is None or end == tokenizer.unk_token_id:
        end = tokenizer.eos_token_id
    if end is None:
        raise ConfigError(f"tokenizer has neither {END_TOKEN!r} nor an eos token")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end
    return SpecialIds(int(end), int(pad))


def fast_decode(tokenizer: Any) -> Callable[..., str]:
    """`decode(ids, skip_special_tokens=...)` of the Rust tokenizer where there is one: the `transformers`
    wrapper costs more than decoding a short answer, and decodes run per cover and per generation step."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend.decode if backend is not None else tokenizer.decode


class Detokenizer:
    """Generated ids -> text without end or pad tokens (reasoning tags such as <think> stay)."""

    def __init__(self, tokenizer: Any) -> None:
        self._decode = fast_decode(tokenizer)
        self._special = tuple({END_TOKEN, tokenizer.eos_token, tokenizer.pad_token} - {None})

    def __call__(self, ids: list[int]) -> str:
        text = self._decode(ids, skip_special_tokens=False)
        for token in self._special:
            text = text.replace(token, "")
        return text
