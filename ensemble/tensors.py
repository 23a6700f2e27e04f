"""Every tensor name, dtype and shape the deployment uses, defined once; each task's steps combine them into
their interfaces (ensemble/<task>/steps.py).

`build/render.py` writes each config.pbtxt from these specs and the wiring check compares them back.
Engine-slot tensors carry the names and types of the tensorrtllm backend's `tensorrt_llm` model
(tensorrtllm_backend all_models/inflight_batcher_llm/tensorrt_llm/config.pbtxt), so a TensorRT-LLM
engine replaces the PyTorch slot with no change to the steps around it. Dims exclude the batch dim.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ensemble.names import EngineKind

_NUMPY = {"TYPE_INT32": np.int32, "TYPE_INT64": np.int64, "TYPE_FP32": np.float32, "TYPE_FP16": np.float16,
          "TYPE_BOOL": np.bool_, "TYPE_STRING": np.object_, "TYPE_UINT64": np.uint64}


@dataclass(frozen=True, slots=True)
class TensorSpec:
    name: str
    dtype: str
    """Triton config type, e.g. ``TYPE_INT32``; ``TYPE_STRING`` is BYTES on the wire."""
    dims: tuple[int, ...]
    optional: bool = False

    @property
    def numpy_dtype(self) -> type:
        return _NUMPY[self.dtype]

    @property
    def wire_dtype(self) -> str:
        """The dtype name clients use (tritonclient's ``InferInput`` datatype)."""
        return "BYTES" if self.dtype == "TYPE_STRING" else self.dtype.removeprefix("TYPE_")

    def as_optional(self) -> TensorSpec:
        return TensorSpec(self.name, self.dtype, self.dims, True)


@dataclass(frozen=True, slots=True)
class Interface:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec:
        return next(t for t in self.inputs if t.name == name)

    def output(self, name: str) -> TensorSpec:
        return next(t for t in self.outputs if t.name == name)


def _s(name: str, dtype: str, *dims: int, optional: bool = False) -> TensorSpec:
    return TensorSpec(name, dtype, tuple(dims), optional)


# Engine slot, as the tensorrt_llm model names them.
INPUT_IDS = _s("input_ids", "TYPE_INT32", -1)
INPUT_LENGTHS = _s("input_lengths", "TYPE_INT32", 1)
REQUEST_OUTPUT_LEN = _s("request_output_len", "TYPE_INT32", 1)
END_ID = _s("end_id", "TYPE_INT32", 1, optional=True)
PAD_ID = _s("pad_id", "TYPE_INT32", 1, optional=True)
STOP_WORDS_LIST = _s("stop_words_list", "TYPE_INT32", 2, -1, optional=True)
RUNTIME_TOP_K = _s("runtime_top_k", "TYPE_INT32", 1, optional=True)
"""Sent as 1 by every pre step: greedy decoding is explicit, never a backend default."""
GUIDED_DECODING_GUIDE_TYPE = _s("guided_decoding_guide_type", "TYPE_STRING", 1, optional=True)
GUIDED_DECODING_GUIDE = _s("guided_decoding_guide", "TYPE_STRING", 1, optional=True)
"""tensorrt_llm's guided decoding (xgrammar): a regex of the answer format; uniqueness is still repaired."""
THINKING_BUDGET = _s("thinking_budget", "TYPE_INT32", 1, optional=True)
ANSWER_CONSTRAINT = _s("answer_constraint", "TYPE_STRING", 1, optional=True)
"""PyTorch-slot extensions: budget forcing and exact answers (``permutation:N``, ``grade``); engines/constraints.py."""
PROMPT_EMBEDDING_TABLE = _s("prompt_embedding_table", "TYPE_FP16", -1, -1, optional=True)
"""Soft-token rows [rows, hidden] (p-tuning / multimodal in TensorRT-LLM): an input id vocab_size + r is replaced by
row r. FP16 on the wire, the template's default; numpy has no bfloat16."""
PROMPT_VOCAB_SIZE = _s("prompt_vocab_size", "TYPE_INT32", 1, optional=True)
"""The rows the table holds."""
PROMPT_TABLE_EXTRA_IDS = _s("prompt_table_extra_ids", "TYPE_UINT64", -1, optional=True)
"""One per input id: 0 for a vocabulary token, a hash of its row for a soft token. With KV-cache reuse on, the same
placeholder ids carry other rows in every request: without these a cached block of another request's rows would be
reused (tensorrtllm_backend docs/multimodal.md: required when enable_kv_cache_reuse is on)."""
LORA_TASK_ID = _s("lora_task_id", "TYPE_UINT64", 1, optional=True)
"""The LoRA adapter a request runs with (absent: the base model alone); its weights are loaded at start
(tensorrtllm: `lora_prefetch_dir`; PyTorch: the slot's `lora_adapters`)."""
LORA_WEIGHTS = _s("lora_weights", "TYPE_FP16", -1, -1, optional=True)
LORA_CONFIG = _s("lora_config", "TYPE_INT32", -1, 3, optional=True)
"""tensorrt_llm's way to send an adapter not prefetched (first request of a task id); declared for hand-written
clients, never sent by our steps."""
OUTPUT_IDS = _s("output_ids", "TYPE_INT32", -1, -1)
SEQUENCE_LENGTH = _s("sequence_length", "TYPE_INT32", -1)

# Our own tensors.
QUERY = _s("query", "TYPE_STRING", 1)
SESSION = _s("session", "TYPE_STRING", -1, optional=True)
IMAGE = _s("image", "TYPE_STRING", 1)
TASK = _s("task", "TYPE_STRING", 1)
REQUEST = _s("request", "TYPE_STRING", 1)
COVER_IMAGES = _s("cover_images", "TYPE_STRING", -1, optional=True)
PLAN = _s("plan", "TYPE_STRING", 1)
GRADE = _s("grade", "TYPE_INT32", 1)
"""A cover grade 1-4 (0: none); a pointwise grade on its grader's scale (-1: none, as 0 may be a grade)."""
CANDIDATE = _s("candidate", "TYPE_STRING", 1)
"""One candidate as JSON (the re-rank request's candidate schema)."""
GRADER = _s("grader", "TYPE_STRING", 1)
REASONING = _s("reasoning", "TYPE_STRING", 1)
CANDIDATE_IDS = _s("candidate_ids", "TYPE_STRING", -1)
RANKED_IDS = _s("ranked_ids", "TYPE_STRING", -1)
RESULT = _s("result", "TYPE_STRING", 1)
RESPONSE = _s("response", "TYPE_STRING", 1)

_TRTLLM_IN = (INPUT_IDS, INPUT_LENGTHS, REQUEST_OUTPUT_LEN, END_ID, PAD_ID, STOP_WORDS_LIST, RUNTIME_TOP_K,
              GUIDED_DECODING_GUIDE_TYPE, GUIDED_DECODING_GUIDE)
_EXTENSIONS = (THINKING_BUDGET, ANSWER_CONSTRAINT)
ENGINE_IN = _TRTLLM_IN + _EXTENSIONS
"""What every pre step produces; each slot declares the part it understands and the ensemble wires only that."""
ENGINE_OUT = (OUTPUT_IDS, SEQUENCE_LENGTH)
SOFT_TOKEN_IN = (PROMPT_EMBEDDING_TABLE, PROMPT_VOCAB_SIZE, PROMPT_TABLE_EXTRA_IDS, LORA_TASK_ID)
"""What a post-rank pre step adds (ensemble/postrank/): the soft-token rows and the adapter."""

LLM_SLOT = Interface(_TRTLLM_IN + SOFT_TOKEN_IN + (LORA_WEIGHTS, LORA_CONFIG), ENGINE_OUT)
"""Text engine slot as the tensorrtllm backend serves it (GPU targets)."""
TORCH_LLM_SLOT = Interface(_TRTLLM_IN[:7] + _EXTENSIONS + SOFT_TOKEN_IN, ENGINE_OUT)
"""Text engine slot on PyTorch: the same tensors, with exact constraints instead of a format regex."""
VLM_SLOT = Interface(_TRTLLM_IN[:7] + _EXTENSIONS + (IMAGE,), ENGINE_OUT)
"""Vision-language slot (Qwen2.5-VL, PyTorch or the LLM API): the PyTorch text-slot tensors plus the image."""


def llm_slot(engine: EngineKind | str) -> Interface:
    """The text slot's tensors for an engine kind."""
    return TORCH_LLM_SLOT if EngineKind(engine) is EngineKind.TORCH else LLM_SLOT


RICH_MEDIA_RERANKER = Interface((REQUEST, COVER_IMAGES), (RANKED_IDS, RESPONSE))
"""The BLS: a re-rank request and its covers in, the ranking and the whole response out."""
