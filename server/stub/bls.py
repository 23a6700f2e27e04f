"""How `rich_media_reranker` reaches the other models over Triton BLS (`ModelCaller` implementations), and how
the sub-calls of one execution are scheduled.

Parameter `Param.SUB_CALLS` picks the caller:
- `SubCalls.ENGINES` (default): pre/post steps in the BLS process (ensemble/bls/inprocess.py), BLS calls to
  the engine slots named by `Param.COVER_ENGINE` and `Param.RERANK_ENGINE`;
- `SubCalls.ENSEMBLES`: BLS calls to the task ensembles named by `Param.COVER_MODEL` and `Param.RERANK_MODEL`,
  each running its own pre/post step models (the steps scale as processes of their own, at 4 more hops per
  request).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import triton_python_backend_utils as pb_utils

from ensemble.arrays import Arrays
from ensemble.bls.caller import DEADLINE, SIDE_BY_SIDE, CoverItem, ModelCaller, RerankAnswer, Slot, SubCallError
from ensemble.bls.inprocess import InProcessCaller
from ensemble.bls.timing import StepTimes, TimedEngines
from ensemble.config import ConfigError, PipelineConfig
from ensemble.cover.grade_store import GradeStore
from ensemble.cover.prompt import cover_template
from ensemble.cover.request import CoverTask
from ensemble.version import Versions, checkpoint_identity, grade_version
from ensemble.metric_families import FAMILIES
from ensemble.names import RICH_MEDIA_RERANKER, STORE_URL_ENV, EngineKind, Metric, Param, SubCalls
from ensemble.outcome_counts import OutcomeCounts
from ensemble.pointwise.answer import known
from ensemble.pointwise.grader import PointwiseItem
from ensemble.postrank.request import PostRankRequest
from ensemble.rerank.outcome import RerankOutcome
from ensemble.rerank.request import RerankRequest
from ensemble.tensors import VLM_SLOT, llm_slot
from ensemble.tokenizer import load_tokenizer
from server.stub.adapter import CounterExport, HistogramExport, ModelContext, error_code_name

_ALONE: ContextVar[bool] = ContextVar("bls_execution_alone", default=False)
_ENGINE_OUTPUTS = ["output_ids", "sequence_length"]


@contextmanager
def waits_in_place(alone: bool) -> Iterator[None]:
    """Within it, when `alone`, a sub-call that overlaps nothing is waited for on the calling thread.

    The stub runs one `execute` of a non-decoupled model at a time, so an execution holding one request has
    nothing to run while its engine call is out. `async_exec` would still hand the call to an executor thread
    and wake the event loop through its self-pipe when the answer comes: two thread hand-offs per call."""
    token = _ALONE.set(alone)
    try:
        yield
    finally:
        _ALONE.reset(token)


def _request(model: str, inputs: Arrays, outputs: list[str]):
    return pb_utils.InferenceRequest(model_name=model, requested_output_names=outputs,
                                     inputs=[pb_utils.Tensor(name, array) for name, array in inputs.items()])


def _read(model: str, response, outputs: list[str]) -> Arrays | SubCallError:
    if response.has_error():
        return SubCallError(model, error_code_name(response.error()), response.error().message())
    return {name: pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in outputs}


async def call_each(model: str, batches: list[Arrays], outputs: list[str]) -> list[Arrays | SubCallError]:
    """One request per batch, all out together. A lone one in an execution of one request is waited for in
    place (`waits_in_place`) unless the request has a deadline (a wait in place cannot be cut short) or other
    sub-calls run beside it (`side_by_side`); several go out with `async_exec` so none holds up the others."""
    requests = [_request(model, inputs, outputs) for inputs in batches]
    if len(requests) == 1 and _ALONE.get() and DEADLINE.get() is None and not SIDE_BY_SIDE.get():
        responses = [requests[0].exec()]
    else:
        responses = await asyncio.gather(*(r.async_exec() for r in requests))
    return [_read(model, response, outputs) for response in responses]


def _rows(values: list[bytes]) -> np.ndarray:
    return np.array(values, dtype=np.object_).reshape(-1, 1)


class TritonEngines:
    """`EngineCaller` over BLS."""

    async def generate(self, model: str, batches: list[Arrays]) -> list[Arrays | SubCallError]:
        return await call_each(model, batches, _ENGINE_OUTPUTS)


async def _ranking_call(model: str, body: str) -> RerankAnswer:
    """One request to a ranking entry (`reranker`, `post_ranker`): its ``ranked_ids`` and ``result`` read back."""
    [out] = await call_each(model, [{"request": _rows([body.encode("utf-8")])}], ["ranked_ids", "result"])
    if isinstance(out, SubCallError):
        raise out
    ranked = [bytes(v).decode("utf-8") for v in out["ranked_ids"].reshape(-1)]
    return RerankAnswer(ranked, RerankOutcome.from_json_dict(json.loads(bytes(out["result"].reshape(-1)[0]))))


class EnsembleCaller:
    """`ModelCaller` over the `cover_evaluator` and `reranker` ensembles."""

    def __init__(self, cover_model: str, rerank_model: str, pointwise_model: str, postrank_model: str,
                 rows_per_call: int = 64) -> None:
        self.cover_model = cover_model
        self.rerank_model = rerank_model
        self.pointwise_model = pointwise_model
        self.postrank_model = postrank_model
        self.rows_per_call = rows_per_call
        """Most rows in one request to an entry (its max_batch_size)."""

    async def evaluate_covers(self, query: str, batches: list[list[CoverItem]]
                              ) -> list[list[int | None] | SubCallError]:
        """Each batch in one request whose batch dimension is its length."""
        encoded = query.encode("utf-8")
        inputs = [{"query": _rows([encoded] * len(items)), "image": _rows([image for image, _ in items]),
                   "task": _rows([task.value.encode() for _, task in items])} for items in batches]
        outputs = await call_each(self.cover_model, inputs, ["grade"])
        return [out if isinstance(out, SubCallError) else [int(g) or None for g in out["grade"].reshape(-1)]
                for out in outputs]

    async def rerank(self, request: RerankRequest) -> RerankAnswer:
        return await _ranking_call(self.rerank_model, request.model_dump_json(exclude_none=True))

    async def post_rank(self, request: PostRankRequest) -> RerankAnswer:
        return await _ranking_call(self.postrank_model, request.model_dump_json())

    def check_post_rank(self, request: PostRankRequest) -> None:
        """The `post_ranker` entry checks the features when it is called."""

    async def grade_pointwise(self, items: list[PointwiseItem]) -> list[int | None | SubCallError]:
        """A row per pair, `rows_per_call` rows a request, all out together; a refused row refuses its request."""
        parts = [items[start:start + self.rows_per_call] for start in range(0, len(items), self.rows_per_call)]
        inputs = [{"query": _rows([p.query.encode("utf-8") for p, _ in part]),
                   "candidate": _rows([p.candidate.model_dump_json(exclude_none=True).encode("utf-8")
                                       for p, _ in part]),
                   "grader": _rows([p.grader.value.encode() for p, _ in part]),
                   "image": _rows([image for _, image in part])} for part in parts]
        outputs = await call_each(self.pointwise_model, inputs, ["grade"])
        grades: list[int | None | SubCallError] = []
        for part, out in zip(parts, outputs):
            grades += ([out] * len(part) if isinstance(out, SubCallError) else
                       [known(int(g)) for g in out["grade"].reshape(-1)])
        return grades


ENGINE_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds: a cover batch on a CPU slot takes milliseconds, an A800 re-rank of 20 candidates about a second, and
a thinking budget of 1,024 tokens on an A10 tens of seconds."""


class StepMetrics:
    """In-process steps and engine calls: their time and runs as Triton counters labelled with the entry point and
    the step (the step model's name, or `names.engine_call_step`), and each engine call's latency as a histogram
    observation."""

    def __init__(self, model: str, times: StepTimes) -> None:
        """`model`: the entry point whose steps these are (the histogram's ``model`` label)."""
        self.model = model
        self.times = times
        self.seconds = CounterExport(FAMILIES[Metric.STEP_SECONDS])
        self.calls = CounterExport(FAMILIES[Metric.STEP_CALLS])
        self.latency = HistogramExport(FAMILIES[Metric.ENGINE_CALL_SECONDS], ENGINE_CALL_BUCKETS)

    def publish(self) -> None:
        self.seconds.publish({(self.model, step): s for step, s in self.times.seconds.items()})
        self.calls.publish({(self.model, step): n for step, n in self.times.calls.items()})
        self.latency.publish([((self.model, engine), s) for engine, s in self.times.take_engine_seconds()])


def timed_engines(model: str) -> tuple[TimedEngines, StepMetrics]:
    """The engine slots over BLS for a Python entry, each call timed, and the metrics that export the times."""
    times = StepTimes()
    return TimedEngines(TritonEngines(), times), StepMetrics(model, times)


def grade_store_for(context: ModelContext, config: PipelineConfig) -> GradeStore | None:
    """The shared grade store the config (or RMR_STORE_URL) names, keyed by the VLM checkpoint and the cover
    templates; None when there is none."""
    import os

    from store import open_store, shown_url
    from store.guarded import GuardedStore

    settings = config.cover_store
    url = os.environ.get(STORE_URL_ENV) or settings.url
    if not url:
        return None
    base = context.directory.parent  # the rendered repository: a relative sqlite path lives beside the models
    store = GuardedStore(open_store(url, timeout_s=settings.timeout_ms / 1000, base=base),
                         retry_after_s=settings.retry_after_s)
    identity = checkpoint_identity(context.path(Param.COVER_TOKENIZER_DIR))
    versions = {task: grade_version(identity, cover_template(task, config.prompts)) for task in CoverTask}
    context.logger.log_info(f"{context.name}: cover grades shared through {shown_url(url)} "
                            f"(versions {', '.join(f'{t.value} {v}' for t, v in versions.items())})")
    return GradeStore(store, versions, relevance_ttl_s=settings.relevance_ttl_s or None,
                      quality_ttl_s=settings.quality_ttl_s or None)


def deployment_version(context: ModelContext, config: PipelineConfig) -> Versions:
    """What produced this deployment's answers: both checkpoints, every template, the profile (rankings are
    stored under its model_version, and every response and request log line carries it)."""
    from ensemble.planner.prompt import planner_template
    from ensemble.postrank import prompt as postrank
    from ensemble.rerank.prompt import rerank_template

    reranker, vlm = (checkpoint_identity(context.path(key))
                     for key in (Param.RERANK_TOKENIZER_DIR, Param.COVER_TOKENIZER_DIR))
    templates = [rerank_template(config.prompts), planner_template(config.prompts),
                 *(cover_template(task, config.prompts) for task in CoverTask)]
    ranker = config.postrank.checkpoint
    if ranker:
        templates += [postrank.load(postrank.POSTRANK, config.prompts), postrank.load(postrank.JUDGE, config.prompts)]
    return Versions.of(reranker, vlm, templates, context.param(Param.PROFILE, "unknown"),
                       checkpoint_identity(ranker) if ranker else "")


class OutcomeMetrics:
    """What the answers and grades were (ensemble/outcome_counts.py), as Triton metrics labelled with the entry
    point that served them."""

    def __init__(self, model: str, counts: OutcomeCounts, *, ranks: bool = True) -> None:
        """`ranks`: the model answers re-rank requests, so its answer series exist at 0 from the start."""
        self.model = model
        self.counts = counts
        self.answers = CounterExport(FAMILIES[Metric.ANSWERS])
        self.repairs = CounterExport(FAMILIES[Metric.REPAIRS])
        self.fallbacks = CounterExport(FAMILIES[Metric.FALLBACKS])
        self.cut = CounterExport(FAMILIES[Metric.THINKING_CUT])
        self.grades = CounterExport(FAMILIES[Metric.COVER_GRADES])
        self.pointwise = CounterExport(FAMILIES[Metric.POINTWISE_GRADES])
        self.post_ranks = CounterExport(FAMILIES[Metric.POST_RANKS])
        if ranks:
            for export in (self.answers, self.fallbacks, self.repairs, self.cut):
                export.declare(model)
        if model == RICH_MEDIA_RERANKER:  # only the BLS post-ranks a ranking's head
            self.post_ranks.declare(model)

    def publish(self) -> None:
        for export, totals in ((self.answers, self.counts.answers), (self.repairs, self.counts.repairs),
                               (self.fallbacks, self.counts.fallbacks), (self.cut, self.counts.budget_cut),
                               (self.grades, self.counts.grades), (self.pointwise, self.counts.pointwise),
                               (self.post_ranks, self.counts.post_ranks)):
            export.publish({(self.model, *labels): n for labels, n in totals.items()})


class StoreMetrics:
    """The grade store's lookups and the store's calls and time as Triton counters."""

    def __init__(self, grades: GradeStore | None) -> None:
        self.grades = grades
        if grades is not None:
            self.lookups = CounterExport(FAMILIES[Metric.COVER_STORE])
            self.calls = CounterExport(FAMILIES[Metric.STORE_CALLS])
            self.seconds = CounterExport(FAMILIES[Metric.STORE_SECONDS])
            for export in (self.lookups, self.calls, self.seconds):
                export.declare()  # an alert on the store's errors then sees the first outage of a new replica

    def publish(self) -> None:
        if self.grades is not None:
            self.lookups.publish(dict(self.grades.counts))
            self.calls.publish(dict(self.grades.store.calls))
            self.seconds.publish({(op,): s for op, s in self.grades.store.seconds.items()})


def caller_for(context: ModelContext, config: PipelineConfig) -> ModelCaller:
    value = context.param(Param.SUB_CALLS, SubCalls.ENGINES.value)
    try:
        sub_calls = SubCalls(value)
    except ValueError:
        choices = [s.value for s in SubCalls]
        raise ConfigError(f"model {context.name!r}: parameter {Param.SUB_CALLS} must be one of {choices}, "
                          f"got {value!r}") from None
    rows = int(context.param(Param.ENGINE_BATCH_SIZE, "64"))
    if sub_calls is SubCalls.ENSEMBLES:
        return EnsembleCaller(context.param(Param.COVER_MODEL), context.param(Param.RERANK_MODEL),
                              context.param(Param.POINTWISE_MODEL), context.param(Param.POSTRANK_MODEL), rows)
    engine = EngineKind(context.param(Param.LLM_ENGINE_KIND))
    return InProcessCaller(
        config, TritonEngines(), one_pair_per_text_call=engine is EngineKind.TENSORRTLLM, rows_per_call=rows,
        cover_slot=Slot(context.param(Param.COVER_ENGINE), VLM_SLOT),
        rerank_slot=Slot(context.param(Param.RERANK_ENGINE), llm_slot(engine)),
        cover_tokenizer=load_tokenizer(context.path(Param.COVER_TOKENIZER_DIR)),
        rerank_tokenizer=load_tokenizer(context.path(Param.RERANK_TOKENIZER_DIR)))
