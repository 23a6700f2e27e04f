"""Prompt templates (files) and their assembly into token ids that fit the engine's input limit.

Templates live in ``ensemble/prompts/<task>.toml``; a path in the pipeline config replaces one.
Placeholders are checked when a template is loaded, so a bad override fails model load, not a request.
"""

from __future__ import annotations

import re
import string
import tomllib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timezone
from enum import Enum
from itertools import chain
from pathlib import Path
from typing import Any, Protocol

from ensemble.config import ConfigError, Prompts
from ensemble.errors import RequestError
from ensemble.fast_bpe import exact_tiktoken
from ensemble.request import Candidate, CoverRequest, PlanRequest, RerankRequest

PROMPTS_DIR = Path(__file__).with_name("prompts")


class Task(str, Enum):
    PLANNER = "planner"
    RERANK = "rerank"
    COVER_RELEVANCE = "cover_relevance"
    COVER_QUALITY = "cover_quality"


_CANDIDATE_FIELDS = {"id", "title", "content", "intent_dimensions", "publish_time", "cover_relevance",
                     "cover_quality", "click_through_rate", "completion_rate"}

# Per task: {template key: (required placeholders, allowed placeholders)}, then the plain keys it needs.
_PLACEHOLDERS: dict[Task, dict[str, tuple[set[str], set[str]]]] = {
    Task.RERANK: {"user": ({"query", "candidates"}, set()), "candidate": ({"id"}, _CANDIDATE_FIELDS)},
    Task.PLANNER: {"user": ({"query", "session"}, set()), "session_item": ({"query"}, set())},
    Task.COVER_RELEVANCE: {"user": ({"image", "query"}, set())},
    Task.COVER_QUALITY: {"user": ({"image"}, {"query"})},
}
_PLAIN_KEYS: dict[Task, set[str]] = {
    Task.RERANK: {"candidate_separator", "unknown", "time_format", "rate_format", "truncation_mark"},
    Task.PLANNER: {"session_empty"},
    Task.COVER_RELEVANCE: {"image"},
    Task.COVER_QUALITY: {"image"},
}


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    task: Task
    system: str
    user: str
    parts: dict[str, str] = field(default_factory=dict)
    """Task-specific pieces: the candidate block, separators, value formats."""
    source: str = ""


def load_template(task: Task, prompts: Prompts | None = None) -> PromptTemplate:
    """The packaged template for `task`, or the file the config names instead."""
    override = getattr(prompts, task.value, "") if prompts else ""
    path = Path(override) if override else PROMPTS_DIR / f"{task.value}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"prompt template {path} for {task.value!r} cannot be read: {exc}") from exc
    if not isinstance(data.get("user"), str):
        raise ConfigError(f"prompt template {path} must define a string 'user'")
    for key, (required, allowed) in _PLACEHOLDERS[task].items():
        text = data.get(key)
        if not isinstance(text, str):
            raise ConfigError(f"prompt template {path} must define a string {key!r}")
        found = _placeholders(text, path, key)
        if missing := required - found:
            raise ConfigError(f"prompt template {path} key {key!r} lacks placeholder(s) {sorted(missing)}")
        if unknown := found - required - allowed:
            raise ConfigError(f"prompt template {path} key {key!r} has unknown placeholder(s) {sorted(unknown)}")
    for key in _PLAIN_KEYS[task]:
        if not isinstance(data.get(key), str):
            raise ConfigError(f"prompt template {path} must define a string {key!r}")
    parts = {k: v for k, v in data.items() if k not in ("system", "user") and isinstance(v, str)}
    return PromptTemplate(task, str(data.get("system", "")), data["user"], parts, str(path))


def _placeholders(text: str, path: Path, key: str) -> set[str]:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        raise ConfigError(f"prompt template {path} key {key!r} is not a valid format string: {exc}") from exc
    if any(not name or not name.isidentifier() for name in names):
        raise ConfigError(f"prompt template {path} key {key!r} has a positional or dotted placeholder")
    return set(names)


class Tokenizer(Protocol):
    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = ...) -> str: ...
    def apply_chat_template(self, conversation: list[dict[str, str]], *, tokenize: bool = ...,
                            add_generation_prompt: bool = ...) -> str: ...


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    text: str
    """The chat-templated prompt."""
    input_ids: list[int]
    truncated: tuple[int, ...] = ()
    """0-based indexes of candidates whose content (or title) was shortened to fit."""
    dropped_session: int = 0
    """Oldest session queries left out to fit."""


def render_chat(tokenizer: Tokenizer, system: str, user: str) -> str:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# A newline followed by a non-space character: no Qwen pre-token spans it, so text cut there encodes to the
# same ids piece by piece as whole (tests/unit/test_prompt_encoding.py checks it on arbitrary text).
_SAFE_CUT = re.compile(r"\n(?=\S)")
_CHUNKED_FROM_CHARS = 2048


def _pieces(text: str) -> list[str]:
    """`text` cut after every newline that a non-space character follows (4x faster than a look-behind split)."""
    parts = _SAFE_CUT.split(text)
    last = parts.pop()
    pieces = [part + "\n" for part in parts]
    pieces.append(last)
    return pieces


def _encode_pieces(backend: Any, pieces: list[str]) -> list[list[int]]:
    """Ids of each piece from the Rust tokenizer, in parallel (Rust threads, GIL released). The `transformers`
    wrapper is skipped (~0.3 ms a call), and so are character offsets where the tokenizer can
    (`encode_batch_fast`, tokenizers >= 0.20): 2.3 ms instead of 4.0 ms for a 20-candidate prompt."""
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    return [e.ids for e in encode(pieces, add_special_tokens=False)]


class PromptEncoder:
    """Prompt text -> the checkpoint tokenizer's ids (no special tokens added), as fast as stays exact:
    tiktoken where it gives the same ids (ensemble/fast_bpe.py: Qwen's tokenizers), else the Rust tokenizer
    on pieces in parallel. 0.8 ms against 2.3 ms (two threads) for a 20-candidate re-rank prompt here."""

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
        return self._fast(text) if self._fast is not None else _encode(self.tokenizer, text)

    def describe(self) -> str:
        return "tiktoken (exact for this tokenizer)" if self._fast is not None else f"tokenizers ({self.refused})"


def _encode(tokenizer: Tokenizer, text: str) -> list[int]:
    """Token ids without added special tokens; long prompts are encoded in pieces (2.3x faster on a
    20-candidate prompt)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return list(tokenizer.encode(text, add_special_tokens=False))
    if len(text) < _CHUNKED_FROM_CHARS:
        return backend.encode(text, add_special_tokens=False).ids
    return list(chain.from_iterable(_encode_pieces(backend, _pieces(text))))


# ---------------------------------------------------------------------------------------------- re-rank

def format_candidate(template: PromptTemplate, prompt_id: int, candidate: Candidate,
                     *, title: str | None = None, content: str | None = None) -> str:
    p = template.parts
    unknown = p["unknown"]

    def rate(value: float | None) -> str:
        return unknown if value is None else p["rate_format"].format(value)

    def grade(value: int | None) -> str:
        return unknown if value is None else str(value)

    published = unknown
    if candidate.publish_time is not None:
        published = candidate.publish_time.astimezone(timezone.utc).strftime(p["time_format"])
    return p["candidate"].format(
        id=prompt_id,
        title=candidate.title if title is None else title,
        content=candidate.content if content is None else content,
        intent_dimensions=", ".join(d.value for d in candidate.intent_dimensions) or unknown,
        publish_time=published,
        cover_relevance=grade(candidate.cover_relevance),
        cover_quality=grade(candidate.cover_quality),
        click_through_rate=rate(candidate.click_through_rate),
        completion_rate=rate(candidate.completion_rate),
    )


def _rerank_text(template: PromptTemplate, request: RerankRequest, tokenizer: Tokenizer,
                 cuts: Sequence[tuple[str | None, str | None]] | None = None) -> str:
    """The chat-templated prompt; `cuts` holds each candidate's shortened (title, content), None = whole."""
    cuts = cuts or [(None, None)] * len(request.candidates)
    blocks = [format_candidate(template, i + 1, c, title=title, content=content)
              for i, (c, (title, content)) in enumerate(zip(request.candidates, cuts))]
    user = template.user.format(query=request.query, candidates=template.parts["candidate_separator"].join(blocks))
    return render_chat(tokenizer, template.system, user)


def build_rerank_prompt(template: PromptTemplate, request: RerankRequest, tokenizer: Tokenizer,
                        max_input_len: int, *, encoder: PromptEncoder | None = None) -> RenderedPrompt:
    """Prompt ids 1..n in request order; contents (then titles) trimmed fairly to fit `max_input_len`.

    Fair: every text keeps min(its length, c) tokens for the largest cap c that fits, so short texts
    stay whole and long ones are cut to the same length. Instructions and ids are never cut.
    """
    candidates = request.candidates
    contents: list[list[int]] = []
    titles: list[list[int]] = []
    mark = template.parts["truncation_mark"]
    encode = encoder or (lambda text: _encode(tokenizer, text))

    def render(title_cap: int | None, content_cap: int | None) -> tuple[str, list[int], tuple[int, ...]]:
        cuts = [(_cut(tokenizer, titles[i], title_cap, mark) if titles else None,
                 _cut(tokenizer, contents[i], content_cap, mark) if contents else None)
                for i in range(len(candidates))]
        text = _rerank_text(template, request, tokenizer, cuts)
        return text, encode(text), tuple(i for i, cut in enumerate(cuts) if cut != (None, None))

    text, ids, cut = render(None, None)
    if len(ids) <= max_input_len:
        return RenderedPrompt(text, ids)
    # Only a prompt that does not fit pays for tokenizing every field on its own.
    contents.extend(encode(c.content) for c in candidates)
    titles.extend(encode(c.title) for c in candidates)
    for stage in ("content", "title"):
        lengths = [len(t) for t in (contents if stage == "content" else titles)]
        overflow = len(ids) - max_input_len
        budget = sum(lengths) - overflow
        for _ in range(8):  # BPE merges at cut points can shift the count by a few tokens
            cap = _water_level(lengths, budget) if budget > 0 else 0
            caps = (None, cap) if stage == "content" else (cap, 0)
            text, ids, cut = render(*caps)
            if len(ids) <= max_input_len:
                return RenderedPrompt(text, ids, cut)
            if cap == 0:  # everything of this stage already cut to nothing
                break
            budget -= len(ids) - max_input_len
    raise RequestError("candidates", f"do not fit max_input_len={max_input_len} tokens even with every "
                       f"title and content cut to nothing (fewer candidates needed)", value=len(ids))


def _water_level(lengths: Sequence[int], budget: int) -> int:
    """Largest cap c with sum(min(l, c)) <= budget."""
    low, high = 0, max(lengths, default=0)
    while low < high:
        mid = (low + high + 1) // 2
        if sum(min(length, mid) for length in lengths) <= budget:
            low = mid
        else:
            high = mid - 1
    return low


def _cut(tokenizer: Tokenizer, ids: list[int], cap: int | None, mark: str) -> str | None:
    """The text of the first `cap` tokens plus the mark, or None when nothing is cut."""
    if cap is None or len(ids) <= cap:
        return None
    # A byte-level BPE cut can split a multi-byte character; drop the broken tail.
    return tokenizer.decode(ids[:cap]).rstrip("\ufffd") + mark


# ---------------------------------------------------------------------------------------------- planner

def build_plan_prompt(template: PromptTemplate, request: PlanRequest, tokenizer: Tokenizer,
                      max_input_len: int) -> RenderedPrompt:
    """The planner prompt; the oldest session queries are left out first when it does not fit."""
    session = list(request.session)
    dropped = 0
    while True:
        lines = [template.parts["session_item"].format(query=q) for q in session]
        user = template.user.format(query=request.query,
                                    session="\n".join(lines) or template.parts["session_empty"])
        text = render_chat(tokenizer, template.system, user)
        ids = _encode(tokenizer, text)
        if len(ids) <= max_input_len:
            return RenderedPrompt(text, ids, dropped_session=dropped)
        if not session:
            raise RequestError("query", f"does not fit max_input_len={max_input_len} tokens", value=len(ids))
        session.pop(0)
        dropped += 1


# ---------------------------------------------------------------------------------------------- covers

def build_cover_prompt(template: PromptTemplate, request: CoverRequest, tokenizer: Tokenizer,
                       max_input_len: int) -> RenderedPrompt:
    """The cover prompt with one image placeholder; the VLM slot expands it to the image's tokens."""
    values: dict[str, Any] = {"image": template.parts["image"], "query": request.query}
    text = render_chat(tokenizer, template.system, template.user.format(**values))
    ids = _encode(tokenizer, text)
    if len(ids) > max_input_len:
        raise RequestError("query", f"does not fit max_input_len={max_input_len} tokens", value=len(ids))
    return RenderedPrompt(text, ids)
