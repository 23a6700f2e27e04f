"""The listwise re-rank prompt: every candidate with every signal, fitted to the engine's input limit."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path

from ensemble.candidate import Candidate
from ensemble.encoding import PromptEncoder
from ensemble.errors import RequestError
from ensemble.rerank.request import RerankRequest
from ensemble.template import PromptTemplate, RenderedPrompt, TemplateSpec, Tokenizer, load_template, render_chat

CANDIDATE_FIELDS = frozenset({"id", "title", "content", "intent_dimensions", "publish_time", "cover_relevance",
                              "cover_quality", "click_through_rate", "completion_rate", "pointwise"})
"""The placeholders a candidate block may use. ``{pointwise}`` is "" unless the request asks for pointwise grades
as a signal (options.pointwise), then `pointwise_format` filled in: the prompt is unchanged for other requests."""

TEMPLATE = TemplateSpec(
    "rerank", Path(__file__).parent,
    {"user": (frozenset({"query", "candidates"}), frozenset()), "candidate": (frozenset({"id"}), CANDIDATE_FIELDS),
     "pointwise_format": (frozenset({"grade"}), frozenset({"grader", "low", "high"}))},
    frozenset({"candidate_separator", "unknown", "time_format", "rate_format", "truncation_mark"}),
    frozenset({"pointwise_format"}))


RELEVANCE_ONLY = TemplateSpec("rerank_relevance_only", TEMPLATE.folder, TEMPLATE.placeholders, TEMPLATE.plain_keys,
                              TEMPLATE.optional_keys)
"""The ablation of Table 2's "w/o principles" row: title and content only."""


def rerank_template(prompts: Mapping[str, str] | None = None) -> PromptTemplate:
    return load_template(TEMPLATE, prompts)


def relevance_only_template() -> PromptTemplate:
    return load_template(RELEVANCE_ONLY)


@dataclass(frozen=True, slots=True)
class PointwiseSignal:
    """Pointwise grades as a listwise signal: which grader gave them, on which scale."""

    grader: str
    scale: tuple[int, int]


def format_candidate(template: PromptTemplate, prompt_id: int, candidate: Candidate,
                     *, title: str | None = None, content: str | None = None,
                     mark: Callable[[str], str] = str, pointwise: PointwiseSignal | None = None) -> str:
    """One candidate's block; `mark` makes request text safe to encode (`PromptEncoder.mark`)."""
    p = template.parts
    unknown = p["unknown"]

    def rate(value: float | None) -> str:
        return unknown if value is None else p["rate_format"].format(value)

    def grade(value: int | None) -> str:
        return unknown if value is None else str(value)

    signal = ""
    if pointwise is not None and "pointwise_format" in p:
        low, high = pointwise.scale
        signal = p["pointwise_format"].format(grade=grade(candidate.pointwise_grade), grader=pointwise.grader.title(),
                                              low=low, high=high)
    published = unknown
    if candidate.publish_time is not None:
        published = candidate.publish_time.astimezone(timezone.utc).strftime(p["time_format"])
    return p["candidate"].format(
        id=prompt_id,
        title=mark(candidate.title if title is None else title),
        content=mark(candidate.content if content is None else content),
        intent_dimensions=", ".join(d.value for d in candidate.intent_dimensions) or unknown,
        publish_time=published,
        cover_relevance=grade(candidate.cover_relevance),
        cover_quality=grade(candidate.cover_quality),
        click_through_rate=rate(candidate.click_through_rate),
        completion_rate=rate(candidate.completion_rate),
        pointwise=signal,
    )


def _rerank_text(template: PromptTemplate, request: RerankRequest, tokenizer: Tokenizer, encoder: PromptEncoder,
                 cuts: Sequence[tuple[str | None, str | None]] | None = None,
                 pointwise: PointwiseSignal | None = None) -> str:
    """The chat-templated prompt, request text marked; `cuts` holds each candidate's shortened (title,
    content), None = whole."""
    cuts = cuts or [(None, None)] * len(request.candidates)
    blocks = [format_candidate(template, i + 1, c, title=title, content=content, mark=encoder.mark,
                               pointwise=pointwise)
              for i, (c, (title, content)) in enumerate(zip(request.candidates, cuts))]
    user = template.user.format(query=encoder.mark(request.query),
                                candidates=template.parts["candidate_separator"].join(blocks))
    return render_chat(tokenizer, template.system, user)


def build_rerank_prompt(template: PromptTemplate, request: RerankRequest, tokenizer: Tokenizer,
                        max_input_len: int, *, encoder: PromptEncoder | None = None,
                        pointwise: PointwiseSignal | None = None) -> RenderedPrompt:
    """Prompt ids 1..n in request order; contents (then titles) trimmed fairly to fit `max_input_len`.

    Fair: every text keeps min(its length, c) tokens for the largest cap c that fits, so short texts
    stay whole and long ones are cut to the same length. Instructions and ids are never cut. Request text is
    encoded as plain text: only the template writes special tokens.
    """
    candidates = request.candidates
    contents: list[list[int]] = []
    titles: list[list[int]] = []
    mark = template.parts["truncation_mark"]
    encoder = encoder or PromptEncoder(tokenizer, fast_bpe=False)

    def render(title_cap: int | None, content_cap: int | None) -> tuple[str, list[int], tuple[int, ...]]:
        cuts = [(_cut(tokenizer, titles[i], title_cap, mark) if titles else None,
                 _cut(tokenizer, contents[i], content_cap, mark) if contents else None)
                for i in range(len(candidates))]
        text = _rerank_text(template, request, tokenizer, encoder, cuts, pointwise)
        return encoder.unmarked(text), encoder(text), tuple(i for i, cut in enumerate(cuts) if cut != (None, None))

    text, ids, cut = render(None, None)
    if len(ids) <= max_input_len:
        return RenderedPrompt(text, ids)
    # Only a prompt that does not fit pays for tokenizing every field on its own.
    contents.extend(encoder.plain(c.content) for c in candidates)
    titles.extend(encoder.plain(c.title) for c in candidates)
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


def carries_pointwise(template: PromptTemplate) -> bool:
    """Whether the template can show pointwise grades: its candidate block has {pointwise} and it says how."""
    return "{pointwise}" in template.parts["candidate"] and "pointwise_format" in template.parts
