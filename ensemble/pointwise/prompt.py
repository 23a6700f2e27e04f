"""The pointwise prompts, one template per grader: one (query, candidate) pair, its cover when the VLM grades it,
and the grader's scale; a content too long for the engine's input is cut to fit."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timezone
from pathlib import Path
from typing import Any

from ensemble.encoding import PromptEncoder
from ensemble.errors import RequestError
from ensemble.pointwise.request import Grader, PointwiseRequest
from ensemble.template import PromptTemplate, RenderedPrompt, TemplateSpec, Tokenizer, load_template, render_chat

_PLACEHOLDERS = {"user": (frozenset({"query", "title", "content", "cover", "low", "high"}),
                          frozenset({"publish_time", "intent_dimensions"}))}
_PARTS = frozenset({"image", "no_cover", "unknown", "time_format"})
TEMPLATES = {grader: TemplateSpec(f"pointwise_{grader.value}", Path(__file__).parent, _PLACEHOLDERS, _PARTS)
             for grader in Grader}


def pointwise_template(grader: Grader, prompts: Mapping[str, str] | None = None) -> PromptTemplate:
    return load_template(TEMPLATES[grader], prompts)


def build_pointwise_prompt(template: PromptTemplate, request: PointwiseRequest, scale: tuple[int, int],
                           tokenizer: Tokenizer, max_input_len: int, *, vision: bool = False,
                           encoder: PromptEncoder | None = None) -> RenderedPrompt:
    """The prompt of one pair; with `vision`, one image placeholder the VLM slot expands to the cover's tokens.
    Request text is encoded as plain text. A content that does not fit is cut (marked with "…"), never the
    instructions, the query or the title."""
    encoder = encoder or PromptEncoder(tokenizer, fast_bpe=False)
    candidate, parts = request.candidate, template.parts
    published = parts["unknown"]
    if candidate.publish_time is not None:
        published = candidate.publish_time.astimezone(timezone.utc).strftime(parts["time_format"])
    values: dict[str, Any] = {
        "query": encoder.mark(request.query), "title": encoder.mark(candidate.title),
        "cover": parts["image"] if vision else parts["no_cover"], "low": scale[0], "high": scale[1],
        "publish_time": published,
        "intent_dimensions": ", ".join(d.value for d in candidate.intent_dimensions) or parts["unknown"]}

    def render(content: str) -> tuple[str, list[int]]:
        text = render_chat(tokenizer, template.system, template.user.format(content=encoder.mark(content), **values))
        return text, encoder(text)

    text, ids = render(candidate.content)
    if len(ids) > max_input_len:
        content_ids = encoder.plain(candidate.content)
        keep = len(content_ids) - (len(ids) - max_input_len)
        for _ in range(4):  # BPE merges at the cut can shift the count by a token or two
            keep = max(keep, 0)
            text, ids = render(tokenizer.decode(content_ids[:keep]).rstrip("\ufffd") + "…")
            if len(ids) <= max_input_len:
                return RenderedPrompt(encoder.unmarked(text), ids, (0,))
            if keep == 0:
                break
            keep -= len(ids) - max_input_len
        raise RequestError("candidate", f"does not fit max_input_len={max_input_len} tokens even with its "
                           "content cut to nothing (shorter query or title needed)", value=len(ids))
    return RenderedPrompt(encoder.unmarked(text), ids)
