"""Budget forcing and exact answer constraints, one state machine per generated row.

Per row, tokens pass through three phases:
1. thinking: free text, until the model closes its reasoning (``</thinking>`` / ``</think>``) or has written
   `thinking_budget` tokens; then the closing and ``<answer>`` are forced (budget forcing). Budget 0 forces
   ``<answer>`` at once (answer-only mode); a negative budget leaves thinking unbounded.
2. answer: only tokens that keep the answer valid (ensemble/constraint.py): for a permutation of N a list
   ``[a,b,...]`` holding each id 1..N exactly once, its ``]`` allowed only when all N appeared; for a grade one
   digit of its scale (1-4, or a pointwise grader's); for a choice one of its letters (A or B).
3. closing: ``</answer>`` is forced, then the end token.
The end token is banned before the answer is complete, so a constrained row always ends with a valid answer.
Works on token ids of single characters (Qwen's BPE has every digit, bracket and comma as its own token).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ensemble.constraint import CHOICES, AnswerConstraint, AnswerKind
from ensemble.tags import CLOSE_ANSWER, FORCED_CLOSING, OPEN_ANSWER, THINK_CLOSERS
from ensemble.tokenizer import fast_decode

_CLOSER_LAST_CHAR = ">"
assert all(closer.endswith(_CLOSER_LAST_CHAR) for closer in THINK_CLOSERS)
_TAIL_TOKENS = 6
"""Enough tokens to hold the longest thinking closer however it was split."""


@dataclass(frozen=True)
class Vocabulary:
    """The few token ids the constraints need, looked up once per tokenizer."""

    digits: dict[str, int]
    choices: dict[str, int]
    open_list: int
    close_list: int
    comma: int
    close_thinking_open_answer: tuple[int, ...]
    newline_open_answer: tuple[int, ...]
    open_answer: tuple[int, ...]
    close_answer: tuple[int, ...]
    think_end_ids: frozenset[int]
    closer_last_ids: frozenset[int]
    """Tokens whose text ends with '>': only after one of them can the text end with a thinking closer, so
    only then is the tail decoded, not at every step of every thinking row."""

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> Vocabulary:
        def single(text: str) -> int:
            ids = tokenizer.encode(text, add_special_tokens=False)
            if len(ids) != 1:
                raise ValueError(f"tokenizer has no single token for {text!r}")
            return ids[0]

        def encode(text: str) -> tuple[int, ...]:
            return tuple(tokenizer.encode(text, add_special_tokens=False))

        think_end = tokenizer.convert_tokens_to_ids("</think>")
        special = frozenset({think_end}) if isinstance(think_end, int) and think_end != tokenizer.unk_token_id else frozenset()
        # Byte-level BPE and SentencePiece both keep '>' as itself in a token's string form.
        tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        closer_last = frozenset(i for i, token in enumerate(tokens) if token and token.endswith(_CLOSER_LAST_CHAR))
        return cls({str(d): single(str(d)) for d in range(10)}, {c: single(c) for c in CHOICES}, single("["),
                   single("]"), single(","), encode(FORCED_CLOSING), encode("\n" + OPEN_ANSWER), encode(OPEN_ANSWER),
                   encode(CLOSE_ANSWER), special, closer_last)


@dataclass
class RowState:
    """What one row may emit next. Phases: thinking -> answer (or free) -> closing -> done."""

    vocab: Vocabulary
    budget: int
    constraint: AnswerConstraint
    end_id: int
    phase: str = "thinking"
    thinking_tokens: int = 0
    forced: list[int] = field(default_factory=list)
    budget_forced: bool = False
    opened: bool = False
    used: set[int] = field(default_factory=set)
    number: str = ""

    def __post_init__(self) -> None:
        self.kind, self.n = self.constraint.kind, self.constraint.n
        if self.budget == 0:  # answer-only mode
            self.forced = list(self.vocab.open_answer)

    def allowed(self) -> tuple[list[int] | None, bool]:
        """(token ids allowed next, or None for any; whether the end token is banned)."""
        if self.forced:
            return [self.forced[0]], True
        if self.phase == "thinking":
            return None, bool(self.constraint)
        if self.phase == "free":
            return None, False
        if self.phase == "done":
            return [self.end_id], False
        return self._answer_tokens(), True

    def _answer_tokens(self) -> list[int]:
        v = self.vocab
        if self.kind is AnswerKind.GRADE:
            return [v.digits[d] for d in self.constraint.grades]
        if self.kind is AnswerKind.CHOICE:
            return list(v.choices.values())
        if not self.opened:
            return [v.open_list]
        remaining = [i for i in range(1, self.n + 1) if i not in self.used]
        width = len(self.number) + 1
        allowed = sorted({v.digits[str(i)[width - 1]] for i in remaining
                          if len(str(i)) >= width and str(i).startswith(self.number)})
        if self.number and int(self.number) in remaining:
            allowed.append(v.close_list if len(remaining) == 1 else v.comma)
        return allowed

    def advance(self, token: int, tail_text: str) -> None:
        v = self.vocab
        if self.forced:
            self.forced.pop(0)
            if not self.forced:
                self.phase = {"closing": "done"}.get(self.phase, "answer" if self.constraint else "free")
            return
        if self.phase == "thinking":
            self.thinking_tokens += 1
            if token in v.think_end_ids or tail_text.endswith(THINK_CLOSERS):
                self.forced = list(v.newline_open_answer)
            elif self.budget > 0 and self.thinking_tokens >= self.budget:
                self.forced = list(v.close_thinking_open_answer)
                self.budget_forced = True
            return
        if self.phase != "answer":
            return
        if self.kind in (AnswerKind.GRADE, AnswerKind.CHOICE) or token == v.close_list:
            if self.number:
                self.used.add(int(self.number))
            self.phase, self.forced = "closing", list(v.close_answer)
        elif token == v.open_list:
            self.opened = True
        elif token == v.comma:
            self.used.add(int(self.number))
            self.number = ""
        else:
            self.number += next(d for d, i in v.digits.items() if i == token)


class ConstraintProcessor:
    """A `transformers` logits processor applying one RowState per batch row (None: row unconstrained).

    Per step it reads the rows' last tokens in one device-to-host copy and masks the scores in a few batched
    operations: per-row indexing cost one copy and several kernel launches per row, every step."""

    def __init__(self, rows: Sequence[RowState | None], tokenizer: Any) -> None:
        self.rows = rows
        self._decode = fast_decode(tokenizer)
        self.steps = 0

    def __call__(self, input_ids, scores):
        import torch

        live = [(row, state) for row, state in enumerate(self.rows) if state is not None and state.phase != "done"]
        if self.steps and live:  # the token chosen at the previous step is now the last input id
            tails = input_ids[:, -_TAIL_TOKENS:].tolist()
            for row, state in live:
                tail = tails[row]
                # Only free thinking needs the text, to spot the model closing it by itself.
                reading = state.phase == "thinking" and not state.forced and tail[-1] in state.vocab.closer_last_ids
                state.advance(tail[-1], self._decode(tail, skip_special_tokens=False) if reading else "")
        self.steps += 1
        banned_rows, banned_ids, kept_rows, kept_ids = [], [], [], []
        for row, state in enumerate(self.rows):
            if state is None:
                continue
            allowed, ban_end = state.allowed()
            if allowed is None:
                if ban_end and state.end_id >= 0:
                    banned_rows.append(row)
                    banned_ids.append(state.end_id)
                continue
            kept_rows += [row] * len(allowed)
            kept_ids += allowed
        if banned_rows:
            scores[torch.tensor(banned_rows, device=scores.device), torch.tensor(banned_ids, device=scores.device)] = -torch.inf
        if kept_rows:
            rows = torch.tensor(kept_rows, device=scores.device)
            ids = torch.tensor(kept_ids, device=scores.device)
            keep = scores[rows, ids]
            scores[torch.tensor(sorted(set(kept_rows)), device=scores.device)] = -torch.inf
            scores[rows, ids] = keep
        return scores


class LlmApiBudget:
    """Budget forcing for TensorRT-LLM's LLM API: a logits processor of `tensorrt_llm.sampling_params.LogitsProcessor`'s
    call signature (one request; logits [1, 1, vocab]; the request's token ids so far), per request.

    It drives one RowState without an answer constraint: it counts the reasoning and, at the budget, forces
    ``</thinking>\\n<answer>``; the answer's format is the guided-decoding regex's job (xgrammar, in C++). The same
    division as NVIDIA Dynamo's thinking-budget processor on TensorRT-LLM. Forcing a sequence needs each forced
    token in `token_ids` before the next step: the slot runs the LLM API without its overlap scheduler."""

    def __init__(self, state: RowState, tokenizer: Any) -> None:
        if state.constraint:
            raise ValueError("the answer is constrained by the guided-decoding regex; give the budget alone")
        self.state = state
        self._decode = fast_decode(tokenizer)
        self._seen: int | None = None

    def __call__(self, req_id: int, logits, token_ids: Sequence[Sequence[int]], stream_ptr: int | None,
                 client_id: int | None) -> None:
        import torch

        ids, state = token_ids[0], self.state
        if self._seen is None:  # the first call: whatever is there (the prompt, or nothing) is not generated
            self._seen = len(ids)
        for at in range(self._seen, len(ids)):
            reading = state.phase == "thinking" and not state.forced and ids[at] in state.vocab.closer_last_ids
            tail = ids[max(0, at + 1 - _TAIL_TOKENS): at + 1]
            state.advance(ids[at], self._decode(list(tail), skip_special_tokens=False) if reading else "")
        self._seen = len(ids)
        allowed, ban_end = state.allowed()
        if allowed is None and not ban_end:
            return
        stream = torch.cuda.stream(torch.cuda.ExternalStream(stream_ptr)) if stream_ptr else contextlib.nullcontext()
        with stream:
            if allowed is None:
                logits[..., state.end_id] = -torch.inf
                return
            keep = torch.tensor(allowed, device=logits.device)
            kept = logits[..., keep].clone()
            logits.fill_(-torch.inf)
            logits[..., keep] = kept
