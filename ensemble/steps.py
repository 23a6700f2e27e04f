"""The pre and post steps of the three ensembles, on numpy arrays without the batch dimension.

A step is a callable ``dict[str, np.ndarray] -> dict[str, np.ndarray]`` with an `interface`
(ensemble/tensors.py). The Triton adapter (server/adapter.py) strips and restores the batch dimension
and turns a `RequestError` into INVALID_ARGUMENT for that request alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from ensemble import tensors as T
from ensemble.answer import parse_grade, parse_permutation, parse_plan
from ensemble.config import Generation, PipelineConfig
from ensemble.cover_cache import image_key
from ensemble.domain import CoverTask
from ensemble.errors import RequestError
from ensemble.fallback import fallback_order
from ensemble.image import CheckedImages
from ensemble.prompt import (PromptEncoder, RenderedPrompt, Task, build_cover_prompt, build_plan_prompt,
                             build_rerank_prompt, load_template)
from ensemble.request import (CoverRequest, RerankRequest, check_cover_limits, check_plan_limits, check_rerank_limits,
                              parse_cover_request, parse_plan_request, parse_rerank_request)
from ensemble.tags import FORCED_CLOSING
from ensemble.tokenizer import STOP_WORDS, Detokenizer, special_ids
from ensemble.words import to_word_list

Arrays = dict[str, np.ndarray]
_GREEDY = np.array([1], dtype=np.int32)
_FORCED_TAG_TOKENS = 16
"""Room for the forced "</thinking>\n<answer>" and "</answer>" tags."""
_FORMAT_REGEX = {
    "permutation": r"[\s\S]*<answer>\[[1-9][0-9]*(,[1-9][0-9]*)*\]</answer>",
    "grade": r"[\s\S]*<answer>[1-4]</answer>",
    "": r"[\s\S]*<answer>[\s\S]*</answer>",
}
"""xgrammar regexes of each answer's format (TensorRT-LLM slots); the PyTorch slot enforces more, exactly."""


def permutation_answer_tokens(n: int) -> int:
    """Tokens of "[1,2,...,n]": one per digit, comma and bracket (Qwen splits numbers into digits)."""
    return sum(len(str(i)) for i in range(1, n + 1)) + n + 1


def scalar_bytes(inputs: Arrays, name: str) -> bytes:
    """The single element of a BYTES[1] input."""
    array = inputs[name]
    if array.size != 1:
        raise RequestError(name, "must hold exactly one element", value=f"shape {list(array.shape)}")
    value = array.reshape(-1)[0]
    if isinstance(value, str):
        return value.encode("utf-8")
    if not isinstance(value, (bytes, np.bytes_)):
        raise RequestError(name, "must be BYTES", value=type(value).__name__)
    return bytes(value)


def bytes_list(inputs: Arrays, name: str) -> list[bytes]:
    array = inputs.get(name)
    if array is None:
        return []
    return [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in array.reshape(-1)]


def as_bytes(text: str) -> np.ndarray:
    return np.array([text.encode("utf-8")], dtype=np.object_)


def generated_ids(inputs: Arrays) -> list[int]:
    """Generated token ids of beam 0."""
    output_ids, lengths = inputs["output_ids"], inputs["sequence_length"]
    length = int(lengths.reshape(-1)[0])
    return output_ids.reshape(-1, output_ids.shape[-1])[0][:length].tolist()


def generated_text(inputs: Arrays, detokenize: Detokenizer) -> tuple[str, list[int]]:
    """Decoded output of beam 0 and its token ids."""
    ids = generated_ids(inputs)
    return detokenize(ids), ids


class BudgetReport:
    """Whether the pipeline closed the reasoning: the forced closing starts exactly at the budget."""

    def __init__(self, tokenizer: Any, generation: Generation) -> None:
        self.generation = generation
        self.closing = tuple(tokenizer.encode(FORCED_CLOSING, add_special_tokens=False))

    def __call__(self, ids: list[int]) -> dict[str, Any]:
        budget = self.generation.thinking_budget
        at = budget if 0 < budget <= len(ids) else -1
        forced = at >= 0 and tuple(ids[at:at + len(self.closing)]) == self.closing
        return {"thinking_budget": budget, "budget_forced": forced, "constrained": self.generation.constrain_answer}


class _PreStep:
    """Shared tail of every pre step: prompt ids -> the engine slot's tensors."""

    def __init__(self, config: PipelineConfig, tokenizer: Any) -> None:
        self.config = config
        self.tokenizer = tokenizer
        ids = special_ids(tokenizer)
        self._end = np.array([ids.end_id], dtype=np.int32)
        self._pad = np.array([ids.pad_id], dtype=np.int32)
        self._stop = to_word_list([tokenizer.encode(w, add_special_tokens=False) for w in STOP_WORDS])

    def engine_inputs(self, prompt: RenderedPrompt, generation: Generation, *, constraint: str = "",
                      answer_tokens: int = 0, max_new_tokens: int | None = None) -> Arrays:
        """The slot tensors. With a thinking budget the output length is the budget plus room for the answer."""
        budget = generation.thinking_budget
        length = max_new_tokens or generation.max_new_tokens
        if budget >= 0 and max_new_tokens is None:
            length = budget + answer_tokens + _FORCED_TAG_TOKENS
        constrained = constraint if generation.constrain_answer else ""
        return {
            "input_ids": np.asarray(prompt.input_ids, dtype=np.int32),
            "input_lengths": np.array([len(prompt.input_ids)], dtype=np.int32),
            "request_output_len": np.array([length], dtype=np.int32),
            "end_id": self._end,
            "pad_id": self._pad,
            "stop_words_list": self._stop,
            "runtime_top_k": _GREEDY,
            "guided_decoding_guide_type": as_bytes("regex"),
            "guided_decoding_guide": as_bytes(_FORMAT_REGEX[constraint.partition(":")[0]]),
            "thinking_budget": np.array([budget], dtype=np.int32),
            "answer_constraint": as_bytes(constrained),
        }


class PlannerPre(_PreStep):
    interface = T.PLANNER_PRE

    def __init__(self, config: PipelineConfig, tokenizer: Any) -> None:
        super().__init__(config, tokenizer)
        self.template = load_template(Task.PLANNER, config.prompts)

    def __call__(self, inputs: Arrays) -> Arrays:
        request = parse_plan_request(scalar_bytes(inputs, "query"), bytes_list(inputs, "session"))
        check_plan_limits(request, self.config.limits)
        generation = self.config.generation.planner
        prompt = build_plan_prompt(self.template, request, self.tokenizer, generation.max_input_len)
        return self.engine_inputs(prompt, generation, answer_tokens=generation.max_new_tokens)


class _PostStep:
    """Shared start of every post step: the engine's ids -> text."""

    def __init__(self, config: PipelineConfig, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.detokenize = Detokenizer(tokenizer)


class PlannerPost(_PostStep):
    interface = T.PLANNER_POST

    def __call__(self, inputs: Arrays) -> Arrays:
        text, _ = generated_text(inputs, self.detokenize)
        plan = parse_plan(text, scalar_bytes(inputs, "query").decode("utf-8", "replace"))
        return {"plan": as_bytes(json.dumps(plan.to_json_dict(), ensure_ascii=False))}


class CoverPre(_PreStep):
    interface = T.COVER_PRE
    PROMPT_CACHE_SIZE = 1024

    def __init__(self, config: PipelineConfig, tokenizer: Any) -> None:
        super().__init__(config, tokenizer)
        self.templates = {task: load_template(Task(f"cover_{task.value}"), config.prompts) for task in CoverTask}
        # A query's covers all share one prompt per task: build its engine tensors once.
        self._inputs: dict[tuple[CoverTask, str], Arrays] = {}
        # Each cover usually comes twice (relevance, quality): check its header once.
        self._checked = CheckedImages(config.limits)

    def __call__(self, inputs: Arrays) -> Arrays:
        request = parse_cover_request(scalar_bytes(inputs, "query"), scalar_bytes(inputs, "task"))
        check_cover_limits(request, self.config.limits)
        image = scalar_bytes(inputs, "image")
        self._checked.check(image, image_key(image))
        return self.prompt_inputs(request.task, request.query)

    def prompt_inputs(self, task: CoverTask, query: str) -> Arrays:
        """The engine tensors of a (task, query) prompt, for an image already checked; shared, never to be
        modified. The BLS calls this directly: it has checked the query and every image itself."""
        key = (task, query)
        inputs = self._inputs.get(key)
        if inputs is None:
            generation = self.config.generation.cover
            prompt = build_cover_prompt(self.templates[task], CoverRequest(query=query, task=task), self.tokenizer,
                                        generation.max_input_len)
            inputs = self.engine_inputs(prompt, generation, constraint="grade", answer_tokens=1)
            if len(self._inputs) >= self.PROMPT_CACHE_SIZE:
                self._inputs.clear()
            self._inputs[key] = inputs
        return inputs


class CoverPost(_PostStep):
    interface = T.COVER_POST

    def __call__(self, inputs: Arrays) -> Arrays:
        text, _ = generated_text(inputs, self.detokenize)
        report = parse_grade(text)
        return {"grade": np.array([report.grade or 0], dtype=np.int32),
                "reasoning": as_bytes(report.thinking)}

    def grades(self, outputs: Arrays) -> list[int | None]:
        """The grade of each row of a batched engine answer (beam 0); the BLS uses this. Rows are decoded one
        by one: `decode_batch` would wake the tokenizer's thread pool, whose spinning threads cost more on a
        few cores than these short decodes take."""
        ids, lengths = outputs["output_ids"], outputs["sequence_length"]
        rows = ids.reshape(len(ids), -1, ids.shape[-1])[:, 0].tolist()  # beam 0 of every row, in one conversion
        lengths = lengths.reshape(len(lengths), -1)[:, 0].tolist()
        return [parse_grade(self.detokenize(row[:length])).grade for row, length in zip(rows, lengths)]


class RerankPre(_PreStep):
    interface = T.RERANK_PRE

    def __init__(self, config: PipelineConfig, tokenizer: Any) -> None:
        super().__init__(config, tokenizer)
        self.template = load_template(Task.RERANK, config.prompts)
        # The one long prompt (~4k tokens): encoding it is most of this step's time.
        self.encoder = PromptEncoder(tokenizer, fast_bpe=config.tokenization.fast_bpe)

    def __call__(self, inputs: Arrays) -> Arrays:
        request = parse_rerank_request(scalar_bytes(inputs, "request"))
        check_rerank_limits(request, self.config.limits)
        return self.for_request(request)

    def for_request(self, request: RerankRequest) -> Arrays:
        """The engine tensors (and candidate ids) of a request already parsed and checked against the limits;
        the BLS calls this directly (its orchestrator has done both)."""
        generation = self.config.generation.rerank
        prompt = build_rerank_prompt(self.template, request, self.tokenizer, generation.max_input_len,
                                     encoder=self.encoder)
        n = len(request.candidates)
        out = self.engine_inputs(prompt, generation, constraint=f"permutation:{n}",
                                 answer_tokens=permutation_answer_tokens(n), max_new_tokens=request.options.max_new_tokens)
        out["candidate_ids"] = np.array([c.id.encode("utf-8") for c in request.candidates], dtype=np.object_)
        return out


class RerankPost(_PostStep):
    interface = T.RERANK_POST

    def __init__(self, config: PipelineConfig, tokenizer: Any) -> None:
        super().__init__(config, tokenizer)
        self.budget = BudgetReport(tokenizer, config.generation.rerank)

    def __call__(self, inputs: Arrays) -> Arrays:
        return self.for_output(inputs, bytes_list(inputs, "candidate_ids"),
                               lambda: parse_rerank_request(scalar_bytes(inputs, "request")))

    def for_output(self, inputs: Arrays, ids: list[bytes], request: Callable[[], RerankRequest]) -> Arrays:
        """Read the engine's answer for candidates `ids`; `request` is asked for only when a repair needs the
        fallback ranker's order. The BLS calls this directly, with the request it already holds."""
        text, output = generated_text(inputs, self.detokenize)
        report = parse_permutation(text, len(ids))
        if not report.valid:
            # Missing ids are placed by the fallback ranker; only a repair pays for computing its order.
            held = request()
            report = parse_permutation(text, len(ids), fill_order=fallback_order(held.query, held.candidates))
        result = {
            "order": report.order,
            "valid": report.valid,
            "format_reward": report.format_reward,
            "repairs": report.issues,
            "reasoning": report.thinking,
            "output_tokens": len(output),
            **self.budget(output),
        }
        ranked = np.array([ids[i - 1] for i in report.order], dtype=np.object_)
        return {"ranked_ids": ranked, "result": as_bytes(json.dumps(result, ensure_ascii=False))}


STEPS = {
    "planner_pre": PlannerPre, "planner_post": PlannerPost,
    "cover_pre": CoverPre, "cover_post": CoverPost,
    "rerank_pre": RerankPre, "rerank_post": RerankPost,
}
"""Step kinds by the name the rendered config gives in its `step` parameter."""
