"""What every task's pre and post steps share: prompt ids -> engine-slot tensors, engine ids -> text.

A step is a callable ``dict[str, np.ndarray] -> dict[str, np.ndarray]`` on one batch row (batch dimension
removed) with an `interface` (ensemble/tensors.py). The Triton adapter (server/stub/adapter.py) strips and
restores the batch dimension and turns a `RequestError` into INVALID_ARGUMENT for that request alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ensemble.arrays import Arrays, as_bytes, generated_ids
from ensemble.config import Generation, PipelineConfig
from ensemble.constraint import AnswerConstraint
from ensemble.encoding import PromptEncoder
from ensemble.tags import FORCED_CLOSING
from ensemble.template import RenderedPrompt
from ensemble.tensors import Interface
from ensemble.tokenizer import STOP_WORDS, Detokenizer, special_ids
from ensemble.words import to_word_list

if TYPE_CHECKING:
    from ensemble.outcome_counts import OutcomeCounts

_GREEDY = np.array([1], dtype=np.int32)
FORCED_TAG_TOKENS = 16
"""Room for the forced "</thinking>\\n<answer>" and "</answer>" tags."""


class PreStep:
    """Prompt ids -> the engine slot's tensors. Subclasses name their `task` (its ``[generation.<task>]``)."""

    task: ClassVar[str]
    interface: ClassVar[Interface]

    def __init__(self, config: PipelineConfig, tokenizer: Any) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.generation = config.generation_for(self.task)
        self.encoder = PromptEncoder(tokenizer, fast_bpe=config.tokenization.fast_bpe)
        ids = special_ids(tokenizer)
        self._end = np.array([ids.end_id], dtype=np.int32)
        self._pad = np.array([ids.pad_id], dtype=np.int32)
        self._stop = to_word_list([tokenizer.encode(w, add_special_tokens=False) for w in STOP_WORDS])

    def engine_inputs(self, prompt: RenderedPrompt, *, constraint: AnswerConstraint = AnswerConstraint(),
                      answer_tokens: int | None = None, max_new_tokens: int | None = None,
                      thinking_budget: int | None = None) -> Arrays:
        """The slot tensors. With a thinking budget the output length is the budget plus room for the answer
        (`answer_tokens`, by default the constraint's); a request's own `max_new_tokens` overrides both."""
        generation = self.generation
        budget = generation.thinking_budget if thinking_budget is None else thinking_budget
        length = max_new_tokens or generation.max_new_tokens
        if budget >= 0 and max_new_tokens is None:
            answer = constraint.answer_tokens if answer_tokens is None else answer_tokens
            length = budget + answer + FORCED_TAG_TOKENS
        enforced = constraint if generation.constrain_answer else AnswerConstraint()
        return {
            "input_ids": np.asarray(prompt.input_ids, dtype=np.int32),
            "input_lengths": np.array([len(prompt.input_ids)], dtype=np.int32),
            "request_output_len": np.array([length], dtype=np.int32),
            "end_id": self._end,
            "pad_id": self._pad,
            "stop_words_list": self._stop,
            "runtime_top_k": _GREEDY,
            "guided_decoding_guide_type": as_bytes("regex"),
            "guided_decoding_guide": as_bytes(constraint.output_regex(budget)),
            "thinking_budget": np.array([budget], dtype=np.int32),
            "answer_constraint": as_bytes(str(enforced)),
        }


class PostStep:
    """The engine's ids -> text."""

    interface: ClassVar[Interface]

    counts_outcomes: ClassVar[bool] = False
    """Whether its answers feed the outcome metrics (valid / repaired / fallback): set `counts` to collect them."""

    def __init__(self, config: PipelineConfig, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.detokenize = Detokenizer(tokenizer)
        self.vocab_size = len(tokenizer)
        self.counts: OutcomeCounts | None = None

    def generated_text(self, inputs: Arrays) -> tuple[str, list[int]]:
        """Decoded output of beam 0 and its token ids."""
        ids = generated_ids(inputs, self.vocab_size)
        return self.detokenize(ids), ids

    def batch_texts(self, outputs: Arrays) -> list[str]:
        """The decoded beam 0 of every row of a batched engine answer. Rows are decoded one by one:
        `decode_batch` would wake the tokenizer's thread pool, whose spinning threads cost more on a few cores
        than these short decodes take."""
        ids, lengths = outputs["output_ids"], outputs["sequence_length"]
        rows = ids.reshape(len(ids), -1, ids.shape[-1])[:, 0].tolist()  # beam 0 of every row, in one conversion
        lengths = lengths.reshape(len(lengths), -1)[:, 0].tolist()
        return [self.detokenize(row[:length]) for row, length in zip(rows, lengths)]


class BudgetReport:
    """Whether the pipeline closed the reasoning: the forced closing starts exactly at the budget."""

    def __init__(self, tokenizer: Any, generation: Generation) -> None:
        self.generation = generation
        self.closing = tuple(tokenizer.encode(FORCED_CLOSING, add_special_tokens=False))

    def __call__(self, ids: list[int], budget: int | None = None) -> dict[str, Any]:
        """`budget`: the request's own, where it set one."""
        budget = self.generation.thinking_budget if budget is None else budget
        at = budget if 0 < budget <= len(ids) else -1
        forced = at >= 0 and tuple(ids[at:at + len(self.closing)]) == self.closing
        return {"thinking_budget": budget, "budget_forced": forced, "constrained": self.generation.constrain_answer}
