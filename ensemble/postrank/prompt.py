"""Post-rank prompts with soft tokens: the template writes a placeholder token where a user or an item goes, and each
becomes an id past the vocabulary that indexes the request's table of encoder rows (TensorRT-LLM's prompt table).

Request text (the query) is marked while the prompt is built (ensemble/encoding.py), so only the template can write
the placeholder token: every one found in the ids is a soft token, in the order the template's fields place them.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensemble.config import ConfigError
from ensemble.encoding import PromptEncoder
from ensemble.errors import RequestError
from ensemble.template import PromptTemplate, TemplateSpec, Tokenizer, load_template, render_chat

SOFT_TOKEN = "<|fim_pad|>"
"""The placeholder the template writes (any single added token works: it never reaches the model, its id is
replaced). Qwen2.5 and Qwen3 tokenizers have it."""
USER_ROW = 0
"""Row 0 of a request's table is the user; rows 1..n its candidates in request order."""

_FOLDER = Path(__file__).parent
POSTRANK = TemplateSpec("postrank", _FOLDER, {"user": (frozenset({"query", "user", "items"}), frozenset()),
                                               "item": (frozenset({"index", "item"}), frozenset())})
JUDGE = TemplateSpec("judge", _FOLDER, {"user": (frozenset({"query", "user", "list_a", "list_b"}), frozenset()),
                                        "item": (frozenset({"index", "item"}), frozenset())})


def load(spec: TemplateSpec, prompts: Mapping[str, str] | None = None) -> PromptTemplate:
    template = load_template(spec, prompts)
    if SOFT_TOKEN in template.system + template.user + template.parts["item"]:
        raise ConfigError(f"prompt template {template.source} writes {SOFT_TOKEN} itself: only {{user}} and "
                          "{item} may place soft tokens")
    return template


@dataclass(frozen=True, slots=True)
class SoftPrompt:
    input_ids: list[int]
    """Vocabulary ids, and vocab_size + r for row r of the table."""
    extra_ids: list[int]
    """Per id: 0, or for a soft token a hash of its row (>= 1): TensorRT-LLM's KV-cache reuse key."""


def soft_token_id(tokenizer: Tokenizer) -> int:
    ids = tokenizer.encode(SOFT_TOKEN, add_special_tokens=False)
    if len(ids) != 1:
        raise ConfigError(f"the tokenizer has no single token {SOFT_TOKEN!r} for soft-token placeholders")
    return ids[0]


def build_soft_prompt(template: PromptTemplate, tokenizer: Tokenizer, encoder: PromptEncoder, *, query: str,
                      blocks: Mapping[str, Sequence[int]], table: np.ndarray, vocab_size: int, placeholder: int,
                      max_input_len: int) -> SoftPrompt:
    """`blocks`: each soft field of the template's user text -> the table rows it shows, in order (``user`` one row,
    a list field one row per line, rendered with the template's ``item``). `placeholder`: SOFT_TOKEN's id
    (`soft_token_id`, looked up once per tokenizer)."""
    values: dict[str, str] = {"query": encoder.mark(query)}
    for name, rows in blocks.items():
        values[name] = SOFT_TOKEN if name == "user" else "".join(
            template.parts["item"].format(index=i + 1, item=SOFT_TOKEN) for i in range(len(rows)))
    order = [name for _, name, _, _ in string.Formatter().parse(template.user) if name in blocks]
    rows = [row for name in order for row in blocks[name]]
    ids = encoder(render_chat(tokenizer, template.system, template.user.format(**values)))
    if len(ids) > max_input_len:
        raise RequestError("candidates", f"make a prompt of {len(ids)} tokens, over max_input_len {max_input_len}",
                           value=len(ids))
    at = [k for k, token in enumerate(ids) if token == placeholder]
    if len(at) != len(rows):  # only a template could do this; load() refuses one that writes the token itself
        raise ConfigError(f"prompt template {template.source} placed {len(at)} soft tokens for {len(rows)} rows")
    hashes = [row_hash(r) for r in table]
    extra = [0] * len(ids)
    for position, row in zip(at, rows):
        ids[position] = vocab_size + row
        extra[position] = hashes[row]
    return SoftPrompt(ids, extra)


def row_hash(row: np.ndarray) -> int:
    """A soft token's identity for KV-cache reuse: equal rows, equal ids; never 0 (TensorRT-LLM's minimum is 1)."""
    digest = int.from_bytes(hashlib.blake2b(np.ascontiguousarray(row, np.float16).tobytes(), digest_size=8).digest(),
                            "little")
    return digest or 1
