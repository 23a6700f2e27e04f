"""The cover prompts, one per task: relevance (image and query) and quality (image alone)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ensemble.cover.request import CoverRequest, CoverTask
from ensemble.encoding import PromptEncoder
from ensemble.errors import RequestError
from ensemble.template import PromptTemplate, RenderedPrompt, TemplateSpec, Tokenizer, load_template, render_chat

_IMAGE = frozenset({"image"})
TEMPLATES = {
    CoverTask.RELEVANCE: TemplateSpec("cover_relevance", Path(__file__).parent,
                                      {"user": (frozenset({"image", "query"}), frozenset())}, _IMAGE),
    CoverTask.QUALITY: TemplateSpec("cover_quality", Path(__file__).parent,
                                    {"user": (_IMAGE, frozenset({"query"}))}, _IMAGE),
}
"""The query is not part of the quality prompt: quality grades can be kept per image."""


def cover_template(task: CoverTask, prompts: Mapping[str, str] | None = None) -> PromptTemplate:
    return load_template(TEMPLATES[task], prompts)


def build_cover_prompt(template: PromptTemplate, request: CoverRequest, tokenizer: Tokenizer,
                       max_input_len: int, *, encoder: PromptEncoder | None = None) -> RenderedPrompt:
    """The cover prompt with one image placeholder (the template's); the VLM slot expands it to the image's
    tokens. The query is encoded as plain text."""
    encoder = encoder or PromptEncoder(tokenizer, fast_bpe=False)
    values: dict[str, Any] = {"image": template.parts["image"], "query": encoder.mark(request.query)}
    text = render_chat(tokenizer, template.system, template.user.format(**values))
    ids = encoder(text)
    if len(ids) > max_input_len:
        raise RequestError("query", f"does not fit max_input_len={max_input_len} tokens", value=len(ids))
    return RenderedPrompt(encoder.unmarked(text), ids)
