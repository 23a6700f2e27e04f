"""Pipeline configuration: one TOML file of defaults, overridable per deployment, parsed strictly."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")

_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)


class ConfigError(ValueError):
    """The configuration is unusable; raised at model load, naming the key."""


class Limits(BaseModel):
    model_config = _STRICT

    max_candidates: int = Field(gt=0)
    """Most candidates one re-rank request may carry; past `rerank_window.size` they are ranked in windows."""
    max_window_candidates: int = Field(gt=0)
    """Most candidates one listwise call (a window, or a `reranker` request) may carry: the engine's
    max_input_len is sized for them (build/profiles: workload.max_candidates)."""
    max_id_chars: int = Field(gt=0)
    max_query_chars: int = Field(gt=0)
    max_session_queries: int = Field(ge=0)
    """Most session-history queries the planner accepts."""
    max_title_chars: int = Field(gt=0)
    max_content_chars: int = Field(gt=0)
    """Hard cap per candidate content; the token budget trims below it."""
    max_image_bytes: int = Field(gt=0)
    max_image_pixels: int = Field(gt=0)
    """Width x height above which an image is refused unread (decompression bombs)."""
    max_image_side: int = Field(gt=0)
    min_image_side: int = Field(gt=0)
    max_request_bytes: int = Field(gt=0)
    """Size of a re-rank request's JSON body, checked before it is parsed."""
    max_request_image_bytes: int = Field(gt=0)
    """Encoded cover images of one request together."""
    max_request_pixels: int = Field(gt=0)
    """Pixels of one request's distinct covers together (from their headers): bounds its decoding time."""
    max_decoded_pixels: int = Field(gt=0)
    """An image larger than this is decoded at reduced size (JPEG draft, then a resize), as the vision model
    would shrink it anyway: bounds the memory one image takes."""
    max_new_tokens: int = Field(gt=0)
    """Most output tokens a request may ask for (options.max_new_tokens), and the engine slots' own limit."""


class Generation(BaseModel):
    model_config = _STRICT

    max_input_len: int = Field(gt=0)
    """Prompt tokens the engine accepts; the prompt is fitted below it."""
    max_new_tokens: int = Field(gt=0)
    """Default output length when the request names none (and no thinking budget sets it)."""
    thinking_budget: int = Field(default=-1, ge=-1)
    """Tokens of reasoning before the pipeline closes it and opens the answer; 0 = answer only; -1 = unbounded."""
    constrain_answer: bool = False
    """Decode the answer under constraints (exact permutation / grade 1-4) where the engine slot supports it."""


class CoverCache(BaseModel):
    model_config = _STRICT

    enabled: bool = True
    max_entries: int = Field(default=100_000, gt=0)
    """Grades kept per BLS instance (LRU); an entry is ~100 bytes."""


class CoverStore(BaseModel):
    model_config = _STRICT

    url: str = ""
    """Where grades are shared: ``redis://host:6379/0`` or ``sqlite:///file`` (relative to the pipeline config's
    folder); "" = none. The environment variable RMR_STORE_URL, where set, replaces it at model load."""
    timeout_ms: float = Field(default=50.0, gt=0)
    """Longest a store call may take; past it the request computes what it lacks."""
    retry_after_s: float = Field(default=1.0, ge=0)
    """After a failed call the store is bypassed this long, then tried again."""
    relevance_ttl_s: float = Field(default=172800.0, ge=0)
    """Relevance grades (query and image) expire; 0 = never."""
    quality_ttl_s: float = Field(default=0.0, ge=0)
    """Quality grades (the image alone) never expire unless set."""


class Deadlines(BaseModel):
    """How a request's time budget (options.deadline_ms, or the Triton request's timeout) is spent: covers it
    lacks, then the re-rank; short of time, cover grading is skipped or stopped, then the fallback ranker answers."""

    model_config = _STRICT

    rerank_reserve_ms: float = Field(default=1500.0, ge=0)
    """Time kept for the re-rank: cover grading stops this long before the deadline (a re-rank's usual time)."""
    margin_ms: float = Field(default=10.0, ge=0)
    """The re-rank is abandoned this long before the deadline, time to answer with the fallback ranker."""


class RerankWindow(BaseModel):
    """How a list longer than one window is re-ranked (RankGPT's sliding window, rank_llm's defaults): windows of
    `size`, from the tail of the list to its head, each `stride` nearer the head, each one constrained listwise
    call; the best of each window carry into the next. (n - size) / stride + 1 calls, rounded up."""

    model_config = _STRICT

    size: int = Field(default=20, ge=2)
    stride: int = Field(default=10, gt=0)
    """At most `size`: a larger stride would leave candidates between windows unranked."""


class Pointwise(BaseModel):
    """Each pointwise grader's grade scale (ensemble/pointwise/), ``"LOW-HIGH"`` in single digits: the prompt
    states it, the answer is constrained to it and read on it."""

    model_config = _STRICT

    relevance: str = "0-4"
    experience: str = "1-4"

    @field_validator("relevance", "experience")
    @classmethod
    def _digits(cls, value: str) -> str:
        low, dash, high = value.partition("-")
        if not (dash and len(low) == len(high) == 1 and (low + high).isdigit() and low < high):
            raise ValueError(f"must be 'LOW-HIGH' with single digits LOW < HIGH (e.g. '1-4'), got {value!r}")
        return value

    def scale(self, grader: str) -> tuple[int, int]:
        low, _, high = getattr(self, grader).partition("-")
        return int(low), int(high)


class Tokenization(BaseModel):
    model_config = _STRICT

    fast_bpe: bool = True
    """Encode prompts with tiktoken where it gives the tokenizer's exact ids (ensemble/fast_bpe.py)."""


class PostRank(BaseModel):
    model_config = _STRICT

    checkpoint: str = ""
    """The post-ranker folder (ensemble/postrank/checkpoint.py); "" = none: post-rank requests are refused."""
    top_k: int = Field(default=10, ge=2)
    """How many of the head `options.post_rank` post-ranks after the re-rank (one call: at most
    limits.max_window_candidates, which caps it)."""
    lora_task_id: int = Field(default=1, ge=0)
    """The adapter's task id in the text slot (`lora_adapters` on PyTorch, `lora_prefetch_dir/<id>` on TensorRT-LLM)."""


class PipelineConfig(BaseModel):
    model_config = _STRICT

    limits: Limits
    prompts: dict[str, str] = {}
    """Template name -> a file that replaces the packaged template ("" = packaged)."""
    generation: dict[str, Generation]
    """Task name (its folder under ensemble/) -> its generation settings."""
    cover_cache: CoverCache = CoverCache()
    cover_store: CoverStore = CoverStore()
    tokenization: Tokenization = Tokenization()
    deadlines: Deadlines = Deadlines()
    rerank_window: RerankWindow = RerankWindow()
    pointwise: Pointwise = Pointwise()
    postrank: PostRank = PostRank()

    @model_validator(mode="after")
    def _windows_fit(self) -> PipelineConfig:
        window, limits = self.rerank_window, self.limits
        if window.stride > window.size:
            raise ValueError(f"rerank_window.stride {window.stride} exceeds rerank_window.size {window.size}")
        if window.size > limits.max_window_candidates:
            raise ValueError(f"rerank_window.size {window.size} exceeds limits.max_window_candidates "
                             f"{limits.max_window_candidates}")
        if limits.max_window_candidates > limits.max_candidates:
            raise ValueError(f"limits.max_window_candidates {limits.max_window_candidates} exceeds "
                             f"limits.max_candidates {limits.max_candidates}")
        return self

    @model_validator(mode="after")
    def _lengths_within_limits(self) -> PipelineConfig:
        for task, generation in self.generation.items():
            if generation.max_new_tokens > self.limits.max_new_tokens:
                raise ValueError(f"generation.{task}.max_new_tokens {generation.max_new_tokens} exceeds "
                                 f"limits.max_new_tokens {self.limits.max_new_tokens}")
        return self

    def generation_for(self, task: str) -> Generation:
        """The settings of `task`; a task without any fails model load, naming the key."""
        try:
            return self.generation[task]
        except KeyError:
            raise ConfigError(f"pipeline config has no [generation.{task}] table") from None

    @classmethod
    def load(cls, path: str | Path | None = None, *, overrides: dict[str, Any] | None = None) -> PipelineConfig:
        """Defaults, then the file at `path` (a full or partial config), then `overrides`."""
        data = _read_toml(DEFAULTS_PATH)
        if path:
            data = merged(data, _read_toml(Path(path)))
        if overrides:
            data = merged(data, overrides)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"pipeline config key {key!r}: {first['msg']}") from exc


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"pipeline config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"pipeline config file {path} is not valid TOML: {exc}") from exc


def merged(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out
