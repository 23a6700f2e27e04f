"""Split a generation into its reasoning and its answer.

Rules (tested in tests/unit/test_tags.py):
- Reasoning is inside ``<thinking>…</thinking>`` (the paper's prompts) or ``<think>…</think>`` (Qwen3).
- The answer is the **last** ``<answer>`` block after the reasoning. Models quote the format example
  (``<answer>[3,1,5,2,4]</answer>``) while thinking; the final answer is the one they end with.
- Nothing inside an unclosed reasoning block counts as an answer: an output cut off mid-thought has none,
  so digits in the reasoning are never read as a ranking.
- A missing ``</answer>`` (generation stopped at the token limit or at the stop word) is tolerated.
- Text with no tags at all is returned as the answer candidate with `tagged=False`; parsers accept it only
  when it is nothing but a well-formed answer (``[3,1,2]``, ``4``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_CLOSERS = ("</thinking>", "</think>")
OPEN_ANSWER = "<answer>"
CLOSE_ANSWER = "</answer>"
FORCED_CLOSING = "</thinking>\n" + OPEN_ANSWER
"""What budget forcing writes when the reasoning reaches its budget (engines/constraints.py)."""

_THINK_OPEN = re.compile(r"<(thinking|think)>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</(?:thinking|think)>", re.IGNORECASE)
_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r"</answer>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Tagged:
    thinking: str
    """Reasoning text, stripped; empty when the model gave none."""
    answer: str | None
    """Text of the last answer block, stripped; None when there is none."""
    tagged: bool
    """Whether the answer came from an ``<answer>`` tag (False: untagged plain text)."""
    answer_closed: bool
    thinking_closed: bool


def split_answer(text: str) -> Tagged:
    """``"<thinking>a</thinking><answer>[2,1]</answer>"`` -> thinking ``"a"``, answer ``"[2,1]"``."""
    thinking, rest, thinking_closed = _take_thinking(text)
    opens = list(_ANSWER_OPEN.finditer(rest))
    if not opens:
        has_tags = bool(_THINK_OPEN.search(text) or _THINK_CLOSE.search(text))
        plain = None if has_tags or not thinking_closed else rest.strip()
        return Tagged(thinking, plain or None, False, False, thinking_closed)
    body = rest[opens[-1].end():]
    close = _ANSWER_CLOSE.search(body)
    answer = body[: close.start()] if close else body
    return Tagged(thinking, answer.strip(), True, close is not None, thinking_closed)


def _take_thinking(text: str) -> tuple[str, str, bool]:
    """(reasoning, text after it, whether it was closed)."""
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        last = closes[-1]
        opening = _THINK_OPEN.search(text, 0, last.start())
        start = opening.end() if opening else 0
        return text[start: last.start()].strip(), text[last.end():], True
    opening = _THINK_OPEN.search(text)
    if not opening:
        return "", text, True
    # Unclosed reasoning: an answer tag after it still counts (the model skipped the closing tag),
    # but no bare text does.
    after = text[opening.end():]
    answer_at = _ANSWER_OPEN.search(after)
    if answer_at:
        return after[: answer_at.start()].strip(), after[answer_at.start():], False
    return after.strip(), "", False
