"""Engine-slot requests and results, and how a generation ends; shared by every engine variant."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ensemble.constraint import AnswerConstraint
from ensemble.cover.image import ALLOWED_FORMATS
from ensemble.errors import RequestError
from ensemble.words import from_word_list


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    input_ids: tuple[int, ...]
    max_new_tokens: int
    end_id: int
    pad_id: int
    stop_words: tuple[tuple[int, ...], ...] = ()
    thinking_budget: int = -1
    """Tokens of reasoning before the answer is forced open; 0 = answer only; -1 = unbounded."""
    answer_constraint: AnswerConstraint = AnswerConstraint()
    """What the answer must be (engines/constraints.py enforces it)."""
    prompt_table: np.ndarray | None = field(default=None, compare=False)
    """Soft-token rows [rows, hidden] (float32): input id vocab_size + r stands for row r."""
    lora_task_id: int | None = None
    """The adapter this row runs with; None: the base model."""


@dataclass(frozen=True, slots=True)
class Generation:
    output_ids: tuple[int, ...]
    """Generated tokens only (TensorRT-LLM's exclude_input_in_output), without the end token."""
    finish_reason: str
    """``end`` (end_id), ``stop_word`` (kept in the output) or ``length``."""


def finish(generated: Sequence[int], request: GenerationRequest) -> Generation | None:
    """The finished generation if `generated` ends it, else None."""
    if generated and generated[-1] == request.end_id:
        return Generation(tuple(generated[:-1]), "end")
    for word in request.stop_words:
        if len(generated) >= len(word) and tuple(generated[-len(word):]) == word:
            return Generation(tuple(generated), "stop_word")
    if len(generated) >= request.max_new_tokens:
        return Generation(tuple(generated[: request.max_new_tokens]), "length")
    return None


def trim(generated: Sequence[int], request: GenerationRequest) -> Generation:
    """Cut a raw continuation at the first point where it ends."""
    for t in range(1, len(generated) + 1):
        done = finish(generated[:t], request)
        if done is not None:
            return done
    return Generation(tuple(generated), "length")


def check_one_placeholder(request: GenerationRequest, image_token_id: int) -> None:
    count = request.input_ids.count(image_token_id)
    if count != 1:
        raise RequestError("input_ids", "must hold exactly one image placeholder token", value=count)


def decoded_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """The image as RGB of at most `max_pixels` (the size the vision model works at): a larger image is decoded
    at reduced scale where its format allows (JPEG's draft mode), then resized. Its header passed
    `check_image` before this."""
    try:
        with Image.open(io.BytesIO(data), formats=sorted(ALLOWED_FORMATS)) as image:
            width, height = image.size
            if width * height <= max_pixels:
                return image.convert("RGB")
            scale = math.sqrt(max_pixels / (width * height))
            size = (max(1, int(width * scale)), max(1, int(height * scale)))
            image.draft("RGB", size)  # JPEG decodes at 1/2, 1/4 or 1/8 scale: never the full size in memory
            rgb = image.convert("RGB")
            return rgb if rgb.width * rgb.height <= max_pixels else rgb.resize(size, Image.Resampling.BICUBIC)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this request's bad image
        raise RequestError("image", f"cannot be decoded ({type(exc).__name__}: {exc})") from None


def faithful_text_prompt(text: str, ids: Sequence[int], added: dict[str, int]) -> bool:
    """Whether `text`, the decoded prompt `ids`, holds no more added-token strings than `ids` holds added tokens:
    an engine that takes text and encodes it again would otherwise read request text as control tokens."""
    if not added:
        return True
    pattern = re.compile("|".join(re.escape(t) for t in sorted(added, key=len, reverse=True)))
    added_ids = set(added.values())
    return len(pattern.findall(text)) == sum(1 for i in ids if i in added_ids)


def request_from_arrays(arrays: dict[str, np.ndarray], *, vocab_size: int, max_new_tokens: int,
                        max_answer_ids: int, hidden_size: int = 0, adapters: Collection[int] = ()
                        ) -> GenerationRequest:
    """Check a slot request as tensorrt_llm receives it (hand-written clients send these directly). `hidden_size`:
    the width a soft-token row must have (0: the slot takes none); `adapters`: the LoRA task ids it has loaded."""
    ids = arrays["input_ids"].reshape(-1)
    length = int(arrays["input_lengths"].reshape(-1)[0]) if "input_lengths" in arrays else len(ids)
    if not 0 < length <= len(ids):
        raise RequestError("input_lengths", f"must be in [1, {len(ids)}] (the input_ids length)", value=length)
    ids = ids[:length]
    table = _prompt_table(arrays, hidden_size)
    top = vocab_size + (0 if table is None else len(table))
    if ids.min() < 0 or ids.max() >= top:
        rule = (f"must be token ids in [0, {vocab_size})" if table is None else
                f"must be token ids in [0, {vocab_size}) or soft tokens in [{vocab_size}, {top}) (the table's rows)")
        raise RequestError("input_ids", rule, value=int(ids.max() if ids.max() >= top else ids.min()))
    out_len = int(arrays["request_output_len"].reshape(-1)[0])
    if not 0 < out_len <= max_new_tokens:
        raise RequestError("request_output_len", f"must be in [1, {max_new_tokens}] (limits.max_new_tokens)",
                           value=out_len)
    end_id = int(arrays["end_id"].reshape(-1)[0]) if arrays.get("end_id") is not None else -1
    pad_id = int(arrays["pad_id"].reshape(-1)[0]) if arrays.get("pad_id") is not None else max(end_id, 0)
    # Rows of different requests share a batch: an id the model cannot embed would fail all of them.
    if not -1 <= end_id < vocab_size:
        raise RequestError("end_id", f"must be a token id in [0, {vocab_size}) or -1 (none)", value=end_id)
    if not 0 <= pad_id < vocab_size:
        raise RequestError("pad_id", f"must be a token id in [0, {vocab_size})", value=pad_id)
    top_k = arrays.get("runtime_top_k")
    if top_k is not None and int(top_k.reshape(-1)[0]) != 1:
        raise RequestError("runtime_top_k", "must be 1: this engine slot decodes greedily",
                           value=int(top_k.reshape(-1)[0]))
    stop = arrays.get("stop_words_list")
    words = from_word_list(stop.reshape(2, -1)) if stop is not None and stop.size else []
    budget = int(arrays["thinking_budget"].reshape(-1)[0]) if arrays.get("thinking_budget") is not None else -1
    if budget < -1:
        raise RequestError("thinking_budget", "must be >= -1 (-1 = unbounded)", value=budget)
    constraint = arrays.get("answer_constraint")
    constraint_text = bytes(constraint.reshape(-1)[0]).decode("utf-8", "replace") if constraint is not None else ""
    task = arrays.get("lora_task_id")
    task_id = int(task.reshape(-1)[0]) if task is not None and task.size else None
    if task_id is not None and task_id not in adapters:
        raise RequestError("lora_task_id", f"must name an adapter this slot loaded ({sorted(adapters) or 'none'})",
                           value=task_id)
    return GenerationRequest(tuple(int(i) for i in ids), out_len, end_id, pad_id,
                             tuple(tuple(w) for w in words if w), budget, _constraint(constraint_text, max_answer_ids),
                             table, task_id)


def _prompt_table(arrays: dict[str, np.ndarray], hidden_size: int) -> np.ndarray | None:
    """The soft-token rows [rows, hidden] as float32, checked; None when the request has none."""
    table = arrays.get("prompt_embedding_table")
    if table is None or table.size == 0:
        return None
    if not hidden_size:
        raise RequestError("prompt_embedding_table", "is not taken by this slot")
    rows = table.reshape(-1, table.shape[-1]) if table.ndim >= 2 else table.reshape(1, -1)
    if rows.shape[-1] != hidden_size:
        raise RequestError("prompt_embedding_table", f"rows must be {hidden_size} wide (the model's hidden size)",
                           value=int(rows.shape[-1]))
    rows = rows.astype(np.float32)
    if not np.isfinite(rows).all():
        raise RequestError("prompt_embedding_table", "must hold finite numbers")
    declared = arrays.get("prompt_vocab_size")
    if declared is not None and declared.size and int(declared.reshape(-1)[0]) != len(rows):
        raise RequestError("prompt_vocab_size", f"must equal the table's rows ({len(rows)})",
                           value=int(declared.reshape(-1)[0]))
    return rows


def _constraint(text: str, max_answer_ids: int) -> AnswerConstraint:
    constraint = AnswerConstraint.parse(text)
    if constraint.n > max_answer_ids:
        raise RequestError("answer_constraint", f"must permute at most {max_answer_ids} ids (limits.max_window_candidates)",
                           value=text)
    return constraint


def arrays_from_generation(generation: Generation, pad_id: int) -> dict[str, np.ndarray]:
    """output_ids [beams=1, T] and sequence_length [beams=1], as tensorrt_llm returns them."""
    ids = np.asarray(generation.output_ids or (pad_id,), dtype=np.int32)[None, :]
    return {"output_ids": ids, "sequence_length": np.array([len(generation.output_ids)], dtype=np.int32)}
