"""The planner prompt: the query and the session's earlier queries, oldest left out first to fit."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ensemble.encoding import PromptEncoder
from ensemble.errors import RequestError
from ensemble.planner.request import PlanRequest
from ensemble.template import PromptTemplate, RenderedPrompt, TemplateSpec, Tokenizer, load_template, render_chat

TEMPLATE = TemplateSpec(
    "planner", Path(__file__).parent,
    {"user": (frozenset({"query", "session"}), frozenset()), "session_item": (frozenset({"query"}), frozenset())},
    frozenset({"session_empty"}))


def planner_template(prompts: Mapping[str, str] | None = None) -> PromptTemplate:
    return load_template(TEMPLATE, prompts)


def build_plan_prompt(template: PromptTemplate, request: PlanRequest, tokenizer: Tokenizer,
                      max_input_len: int, *, encoder: PromptEncoder | None = None) -> RenderedPrompt:
    """The planner prompt; the oldest session queries are left out first when it does not fit. Request text is
    encoded as plain text: only the template writes special tokens."""
    encoder = encoder or PromptEncoder(tokenizer, fast_bpe=False)
    session = [encoder.mark(q) for q in request.session]
    dropped = 0
    while True:
        lines = [template.parts["session_item"].format(query=q) for q in session]
        user = template.user.format(query=encoder.mark(request.query),
                                    session="\n".join(lines) or template.parts["session_empty"])
        text = render_chat(tokenizer, template.system, user)
        ids = encoder(text)
        if len(ids) <= max_input_len:
            return RenderedPrompt(encoder.unmarked(text), ids, dropped_session=dropped)
        if not session:
            raise RequestError("query", f"does not fit max_input_len={max_input_len} tokens", value=len(ids))
        session.pop(0)
        dropped += 1
