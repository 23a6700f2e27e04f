"""Prompt template files, checked when loaded, and their rendering through the checkpoint's chat template.

A task keeps its template(s) beside its code (``ensemble/<task>/<name>.toml``) and describes which keys and
placeholders they must have (`TemplateSpec`); the pipeline config's ``[prompts]`` table may name a file to
use instead (a trained checkpoint expects the exact prompt it was trained on). A bad override fails model
load, not a request.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ensemble.config import ConfigError

PRIVATE_MARK = "\ue000"
"""Opens a placeholder for request text (ensemble/encoding.py); no template may hold it."""


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    name: str
    """The template's name: its packaged file's stem and its key under the config's ``[prompts]``."""
    folder: Path
    """Where the packaged file is."""
    placeholders: Mapping[str, tuple[frozenset[str], frozenset[str]]]
    """Template key -> (placeholders it must hold, further ones it may hold). ``user`` is always checked."""
    plain_keys: frozenset[str] = frozenset()
    """Keys that must be strings, placeholders unchecked (separators, formats)."""
    optional_keys: frozenset[str] = frozenset()
    """Keys of `placeholders` a template may leave out (a feature it then does not offer)."""

    @property
    def packaged(self) -> Path:
        return self.folder / f"{self.name}.toml"


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    name: str
    system: str
    user: str
    parts: dict[str, str] = field(default_factory=dict)
    """Task-specific pieces: the candidate block, separators, value formats."""
    source: str = ""


def load_template(spec: TemplateSpec, prompts: Mapping[str, str] | None = None) -> PromptTemplate:
    """The packaged template of `spec`, or the file `prompts[spec.name]` names instead."""
    override = (prompts or {}).get(spec.name, "")
    path = Path(override) if override else spec.packaged
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"prompt template {path} for {spec.name!r} cannot be read: {exc}") from exc
    if not isinstance(data.get("user"), str):
        raise ConfigError(f"prompt template {path} must define a string 'user'")
    for key, (required, allowed) in spec.placeholders.items():
        text = data.get(key)
        if text is None and key in spec.optional_keys:
            continue
        if not isinstance(text, str):
            raise ConfigError(f"prompt template {path} must define a string {key!r}")
        found = _placeholders(text, path, key)
        if missing := required - found:
            raise ConfigError(f"prompt template {path} key {key!r} lacks placeholder(s) {sorted(missing)}")
        if unknown := found - required - allowed:
            raise ConfigError(f"prompt template {path} key {key!r} has unknown placeholder(s) {sorted(unknown)}")
    for key in spec.plain_keys:
        if not isinstance(data.get(key), str):
            raise ConfigError(f"prompt template {path} must define a string {key!r}")
    if any(PRIVATE_MARK in v for v in data.values() if isinstance(v, str)):
        raise ConfigError(f"prompt template {path} holds U+E000, which marks request text while prompts are built")
    parts = {k: v for k, v in data.items() if k not in ("system", "user") and isinstance(v, str)}
    return PromptTemplate(spec.name, str(data.get("system", "")), data["user"], parts, str(path))


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
