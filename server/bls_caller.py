"""How `rich_media_reranker` reaches the other models over Triton BLS (`ModelCaller` implementations).

Parameter ``sub_calls`` picks one:
- ``engines`` (default): pre/post steps in the BLS process (ensemble/inprocess_caller.py), BLS calls to the
  engine slots named by ``cover_engine`` and ``rerank_engine``;
- ``ensembles``: BLS calls to the ensembles named by ``cover_model`` and ``rerank_model``, each running its
  own pre/post step models (scales the steps as separate processes, at 4 more hops per request).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import triton_python_backend_utils as pb_utils

from ensemble.config import ConfigError, PipelineConfig
from ensemble.domain import CoverTask
from ensemble.inprocess_caller import InProcessCaller, Slot
from ensemble.orchestrator import SUB_CALLS_OVERLAP, ModelCaller, RerankAnswer, SubCallError
from ensemble.request import RerankRequest
from ensemble.rows import Arrays
from ensemble.tensors import VLM_SLOT, llm_slot
from ensemble.tokenizer import load_tokenizer
from server.adapter import CounterExport, ModelContext, error_code_name

SUB_CALLS = ("engines", "ensembles")


_ALONE: ContextVar[bool] = ContextVar("bls_execution_alone", default=False)


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


async def _call(model: str, inputs: Arrays, outputs: list[str]) -> Arrays:
    request = pb_utils.InferenceRequest(
        model_name=model, requested_output_names=outputs,
        inputs=[pb_utils.Tensor(name, array) for name, array in inputs.items()])
    alone = _ALONE.get() and not SUB_CALLS_OVERLAP.get()
    response = request.exec() if alone else await request.async_exec()
    if response.has_error():
        raise SubCallError(model, error_code_name(response.error()), response.error().message())
    return {name: pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in outputs}


def _rows(values: list[bytes]) -> np.ndarray:
    return np.array(values, dtype=np.object_).reshape(-1, 1)


class TritonEngines:
    """`EngineCaller` over BLS."""

    async def generate(self, model: str, inputs: Arrays) -> Arrays:
        return await _call(model, inputs, ["output_ids", "sequence_length"])


class EnsembleCaller:
    """`ModelCaller` over the `cover_evaluator` and `reranker` ensembles."""

    def __init__(self, cover_model: str, rerank_model: str) -> None:
        self.cover_model = cover_model
        self.rerank_model = rerank_model

    async def evaluate_covers(self, query: str, items: list[tuple[bytes, CoverTask]]) -> list[int | None]:
        """All items in one request whose batch dimension is len(items)."""
        encoded = query.encode("utf-8")
        out = await _call(self.cover_model, {
            "query": _rows([encoded] * len(items)), "image": _rows([image for image, _ in items]),
            "task": _rows([task.value.encode() for _, task in items])}, ["grade"])
        return [int(g) or None for g in out["grade"].reshape(-1)]

    async def rerank(self, request: RerankRequest) -> RerankAnswer:
        body = request.model_dump_json(exclude_none=True).encode("utf-8")
        out = await _call(self.rerank_model, {"request": _rows([body])}, ["ranked_ids", "result"])
        ranked = [bytes(v).decode("utf-8") for v in out["ranked_ids"].reshape(-1)]
        return RerankAnswer(ranked, json.loads(bytes(out["result"].reshape(-1)[0])))


class StepMetrics:
    """The in-process steps' time and calls as Triton counters, labelled with the step model's name:
    ``rmr_bls_step_us_total{step}``, ``rmr_bls_step_total{step}`` (nothing for the ensembles caller)."""

    def __init__(self, caller: ModelCaller) -> None:
        self.times = getattr(caller, "times", None)
        if self.times is not None:
            self.us = CounterExport("rmr_bls_step_us_total", "Microseconds spent in each pre/post step run inside "
                                    "the BLS", ("step",))
            self.calls = CounterExport("rmr_bls_step_total", "Runs of each pre/post step inside the BLS", ("step",))

    def publish(self) -> None:
        if self.times is not None:
            self.us.publish({(step,): us for step, us in self.times.us.items()})
            self.calls.publish({(step,): n for step, n in self.times.calls.items()})


def caller_for(context: ModelContext, config: PipelineConfig) -> ModelCaller:
    sub_calls = context.param("sub_calls", "engines")
    if sub_calls not in SUB_CALLS:
        raise ConfigError(f"model {context.name!r}: parameter sub_calls must be one of {SUB_CALLS}, got {sub_calls!r}")
    if sub_calls == "ensembles":
        return EnsembleCaller(context.param("cover_model"), context.param("rerank_model"))
    return InProcessCaller(
        config, TritonEngines(),
        cover_slot=Slot(context.param("cover_engine"), VLM_SLOT),
        rerank_slot=Slot(context.param("rerank_engine"), llm_slot(context.param("llm_slot"))),
        cover_tokenizer=load_tokenizer(context.path("cover_tokenizer_dir")),
        rerank_tokenizer=load_tokenizer(context.path("rerank_tokenizer_dir")))
