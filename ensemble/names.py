"""Every name that more than one folder needs: deployed models, model parameters, metrics, closed choices.

Rendering (build/), the code inside the Triton stub (server/stub/), the clients and the benchmarks all read
these; none of them writes one of these strings itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class TaskModels:
    """The deployed models of one task: its ensemble (the entry point) and the ensemble's two step models."""

    entry: str
    pre: str
    post: str


PLANNER = TaskModels("query_planner", "planner_preprocess", "planner_postprocess")
COVER = TaskModels("cover_evaluator", "cover_preprocess", "cover_postprocess")
RERANK = TaskModels("reranker", "reranker_preprocess", "reranker_postprocess")
POINTWISE = TaskModels("pointwise_grader", "pointwise_preprocess", "pointwise_postprocess")
POSTRANK = TaskModels("post_ranker", "postrank_preprocess", "postrank_postprocess")
LIST_JUDGE = TaskModels("list_judge", "list_judge_preprocess", "list_judge_postprocess")

RICH_MEDIA_RERANKER = "rich_media_reranker"
"""The BLS model the search backend calls: cover grading, then the re-rank."""
LLM_ENGINE = "reranker_llm"
"""Text engine slot (Qwen3): the planner and the re-rank run on it."""
VLM_ENGINE = "cover_vlm"
"""Vision-language engine slot (Qwen2.5-VL): the cover grades."""

PIPELINE_MODELS = (RICH_MEDIA_RERANKER, LLM_ENGINE, VLM_ENGINE)
"""What a `rich_media_reranker` request needs where the BLS runs the steps itself (bls_sub_calls = engines): lean
replicas of tests and benchmarks serve only these (server/host/launcher.py: ServerOptions.models)."""
ENTRY_POINTS = (RICH_MEDIA_RERANKER, RERANK.entry, COVER.entry, PLANNER.entry, POINTWISE.entry, POSTRANK.entry,
                LIST_JUDGE.entry)
"""The models a client calls (the load test and the benchmarks pick from these)."""
ENGINE_SLOTS = (LLM_ENGINE, VLM_ENGINE)

PIPELINE_FILE = "pipeline.toml"
"""The pipeline overrides a rendered repository carries beside its models."""
STORE_URL_ENV = "RMR_STORE_URL"
"""Environment variable that, where set, replaces `[cover_store] url` when the BLS loads (one URL per replica
set, without re-rendering)."""


class EngineKind(str, Enum):
    """What fills the text slot: PyTorch (Python backend) or NVIDIA's C++ `tensorrtllm` backend."""

    TORCH = "torch"
    TENSORRTLLM = "tensorrtllm"


class SubCalls(str, Enum):
    """How the BLS reaches the models it calls."""

    ENGINES = "engines"
    """Pre/post steps in the BLS process, sub-calls to the engine slots only."""
    ENSEMBLES = "ensembles"
    """Sub-calls to the task ensembles, each running its own step models."""


class Param:
    """Keys of the `parameters` of rendered configs, as the model.py files read them."""

    PIPELINE_CONFIG = "pipeline_config"
    PROFILE = "profile"
    """The target profile the repository was rendered for (cpu, a10, a800 or a user's file's name)."""
    # step models
    STEP = "step"
    TOKENIZER_DIR = "tokenizer_dir"
    # engine slots
    CHECKPOINT_DIR = "checkpoint_dir"
    VISION = "vision"
    DEVICE = "device"
    DTYPE = "dtype"
    WEIGHTS = "weights"
    SIMULATE = "simulate"
    KV_CACHE_GIB = "kv_cache_gib"
    KV_CACHE_FRACTION = "kv_cache_fraction"
    GPU_DEVICE_ID = "gpu_device_id"
    LORA_ADAPTERS = "lora_adapters"
    """JSON object: LoRA task id -> the PEFT adapter folder the text slot loads (see `lora_adapters`)."""
    # the BLS
    SUB_CALLS = "sub_calls"
    WAITS_IN_PLACE = "waits_in_place"
    COVER_ENGINE = "cover_engine"
    RERANK_ENGINE = "rerank_engine"
    LLM_ENGINE_KIND = "llm_slot"
    COVER_TOKENIZER_DIR = "cover_tokenizer_dir"
    RERANK_TOKENIZER_DIR = "rerank_tokenizer_dir"
    COVER_MODEL = "cover_model"
    RERANK_MODEL = "rerank_model"
    POINTWISE_MODEL = "pointwise_model"
    POSTRANK_MODEL = "postrank_model"
    ENGINE_BATCH_SIZE = "engine_batch_size"
    """Most rows one engine request carries (cover or pointwise batches): the slots' max_batch_size."""


class Metric:
    """Custom metric families the BLS exports on Triton's metrics port."""

    STEP_SECONDS = "rmr_bls_step_seconds_total"
    """Seconds in each pre/post step run inside the BLS, and in each engine call it waits for, label ``step``."""
    STEP_CALLS = "rmr_bls_step_total"
    """Runs of each pre/post step inside the BLS, and engine calls it made, label ``step``."""
    COVER_CACHE = "rmr_cover_cache_total"
    """Cover-grade cache lookups, labels ``result`` (hits | misses) and ``task``."""
    COVER_STORE = "rmr_cover_store_total"
    """Grade-store lookups, labels ``result`` (hits | misses | invalid | unavailable) and ``task``."""
    STORE_CALLS = "rmr_store_calls_total"
    """Calls to the shared store, labels ``op`` (get | set) and ``result`` (ok | error | bypassed)."""
    STORE_SECONDS = "rmr_store_seconds_total"
    """Seconds in calls that reached the store, label ``op``."""
    ANSWERS = "rmr_rerank_answers_total"
    """Re-rank answers, labels ``model`` (the entry point) and ``kind`` (valid | repaired | fallback)."""
    REPAIRS = "rmr_rerank_repairs_total"
    """Repairs made to re-rank answers, labels ``model`` and ``kind`` (ensemble/rerank/answer.py: RepairKind)."""
    FALLBACKS = "rmr_rerank_fallbacks_total"
    """Answers replaced by the fallback ranker, labels ``model`` and ``reason`` (RerankOutcome.fallback_kind)."""
    THINKING_CUT = "rmr_thinking_cut_total"
    """Answers whose reasoning was cut at the thinking budget, labels ``model`` and ``task``."""
    COVER_GRADES = "rmr_cover_grades_total"
    """Cover grades in responses, labels ``model``, ``task`` and ``source`` (ensemble/bls/covers.py: GradeSource)."""
    POINTWISE_GRADES = "rmr_pointwise_grades_total"
    """Pointwise grades in responses, labels ``model``, ``grader`` and ``source`` (GradeSource's names)."""
    POST_RANKS = "rmr_post_ranks_total"
    """options.post_rank in the BLS, label ``result``: applied | failed (the ranking kept) | deadline."""
    REFUSED = "rmr_requests_refused_total"
    """Requests answered INVALID_ARGUMENT (Triton counts them as successes), labels ``model`` (the entry point, or
    an engine slot called directly) and ``field`` (the request field named, candidate indexes as ``[]``)."""
    ENGINE_CALL_SECONDS = "rmr_engine_call_seconds"
    """Histogram of engine calls as the BLS or a Python entry waits for them (queue, compute, hand-off), labels
    ``model`` (the entry point) and ``engine``."""


def lora_adapters(value: str) -> dict[int, str]:
    """The `lora_adapters` parameter read: ``{"1": "/ckpt/postrank"}`` -> {1: "/ckpt/postrank"}; "" -> none."""
    import json

    return {int(task): str(folder) for task, folder in (json.loads(value) if value else {}).items()}


def engine_call_step(engine: str) -> str:
    """The step label of an engine call as the BLS waits for it (queue, compute and the hand-off)."""
    return f"{engine} call"
