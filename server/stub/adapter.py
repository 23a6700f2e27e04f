"""Glue between Triton's Python backend and `ensemble`; imported only inside the Triton stub.

Error codes are chosen here and only here: `RequestError` -> INVALID_ARG for that request alone;
anything else -> the traceback to the server log and a short INTERNAL message to the client.
`execute` never raises, so one bad request never fails the batch it arrived in.
"""

from __future__ import annotations

import itertools
import json
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from ensemble.config import ConfigError, PipelineConfig
from ensemble.errors import RequestError, field_label
from ensemble.names import Metric, Param
from ensemble.metric_families import COUNTER, FAMILIES, HISTOGRAM, Family
from ensemble.arrays import stack_rows
from ensemble.tensors import Interface

Arrays = dict[str, np.ndarray]


class ModelContext:
    """What `initialize` learns once: name, folder, string parameters, logger."""

    def __init__(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self.name: str = config["name"]
        self.directory = Path(args["model_repository"])
        self.params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.logger = pb_utils.Logger
        self.log_tag = ""
        """Versions that produced this model's answers (ensemble/version.py: Versions.tag), in its log lines."""
        self.entry = _entry_point(self.name)
        self._refusals: CounterExport | None = None
        self._refused: dict[tuple[str, str], int] = {}

    def refused(self, error: RequestError) -> None:
        """Counted at once (refusals are rare, and an alert on them should not wait for a flush)."""
        if self._refusals is None:
            self._refusals = CounterExport(FAMILIES[Metric.REFUSED])
        key = (self.entry, field_label(error.field))
        self._refused[key] = self._refused.get(key, 0) + 1
        self._refusals.publish({key: self._refused[key]})

    def param(self, key: str, default: str | None = None) -> str:
        value = self.params.get(key, default)
        if value is None:
            raise ConfigError(f"model {self.name!r}: parameter {key!r} is required")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.param(key, "true" if default else "false")
        if value not in ("true", "false"):
            raise ConfigError(f"model {self.name!r}: parameter {key!r} must be true or false, got {value!r}")
        return value == "true"

    def path(self, key: str) -> str:
        """A path parameter; relative paths are relative to this model's folder."""
        value = self.param(key)
        return str((self.directory / value).resolve()) if value and not Path(value).is_absolute() else value

    def pipeline_config(self) -> PipelineConfig:
        key = Param.PIPELINE_CONFIG
        return PipelineConfig.load(self.path(key) if self.params.get(key) else None)


def _entry_point(model: str) -> str:
    """The entry point a model serves: a step model's ensemble, else the model itself."""
    from ensemble.tasks import entry_of

    try:
        return entry_of(model)
    except KeyError:
        return model


def read_rows(request: Any, interface: Interface) -> list[Arrays]:
    """One dict of inputs per batch row of the request (batch dimension removed); optional inputs may be absent.

    A request may carry several rows (the BLS sends all cover evaluations of a query as one request, as
    clients of tensorrt_llm may); each row is processed on its own.
    """
    arrays: Arrays = {}
    batch: int | None = None
    for spec in interface.inputs:
        tensor = pb_utils.get_input_tensor_by_name(request, spec.name)
        if tensor is None:
            if spec.optional:
                continue
            raise RequestError(spec.name, "is a required input")
        array = tensor.as_numpy()
        if array.ndim == 0 or array.shape[0] < 1:
            raise RequestError(spec.name, "must have a batch dimension", value=list(array.shape))
        if batch is not None and array.shape[0] != batch:
            raise RequestError(spec.name, f"must have the batch size of the other inputs ({batch})",
                               value=array.shape[0])
        batch = array.shape[0]
        arrays[spec.name] = array
    return [{name: array[row] for name, array in arrays.items()} for row in range(batch or 0)]


def response_from(outputs: Arrays, interface: Interface) -> Any:
    """A response from batched output arrays."""
    tensors = [pb_utils.Tensor(spec.name, np.asarray(outputs[spec.name], dtype=spec.numpy_dtype))
               for spec in interface.outputs if spec.name in outputs]
    return pb_utils.InferenceResponse(output_tensors=tensors)


def error_response(error: BaseException, context: ModelContext) -> Any:
    if isinstance(error, RequestError):
        context.refused(error)
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error), pb_utils.TritonError.INVALID_ARG))
    context.logger.log_error(f"{context.name} {context.log_tag}: {''.join(traceback.format_exception(error))}")
    message = f"{context.name}: internal error ({type(error).__name__}); see the server log"
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, pb_utils.TritonError.INTERNAL))


def run_each(requests: Sequence[Any], step: Callable[[Arrays], Arrays], interface: Interface,
             context: ModelContext) -> list[Any]:
    """One response per request, in order; each request fails alone."""
    responses = []
    for request in requests:
        try:
            rows = [step(row) for row in read_rows(request, interface)]
            responses.append(response_from(stack_rows(rows, interface.outputs), interface))
        except Exception as error:  # noqa: BLE001 - becomes this request's error response
            responses.append(error_response(error, context))
    return responses


def run_batched(requests: Sequence[Any], parse: Callable[[Arrays], Any],
                batch: Callable[[list[Any]], list[Arrays | BaseException]], interface: Interface,
                context: ModelContext) -> list[Any]:
    """Parse every row of every request, run all valid rows as one batch, answer each request in order.

    A request fails alone: with its first row's error if any row of it failed.
    """
    responses, owners, items = _parsed(requests, parse, interface, context)
    if items:
        try:
            results = batch(items)
        except Exception as error:  # noqa: BLE001 - the batch failed as a whole: each request says so
            results = [error] * len(items)
        _answer(responses, owners, results, interface, context)
    return responses


async def run_batched_async(requests: Sequence[Any], parse: Callable[[Arrays], Any],
                            batch: Callable[[list[Any]], Awaitable[list[Arrays | BaseException]]],
                            interface: Interface, context: ModelContext) -> list[Any]:
    """`run_batched` for a batch that is a coroutine (one that makes BLS calls)."""
    responses, owners, items = _parsed(requests, parse, interface, context)
    if items:
        try:
            results = await batch(items)
        except Exception as error:  # noqa: BLE001 - the batch failed as a whole: each request says so
            results = [error] * len(items)
        _answer(responses, owners, results, interface, context)
    return responses


def _parsed(requests: Sequence[Any], parse: Callable[[Arrays], Any], interface: Interface, context: ModelContext
            ) -> tuple[list[Any], list[int], list[Any]]:
    """(responses with the refused requests' errors, the owning request of each parsed row, the rows)."""
    responses: list[Any] = [None] * len(requests)
    owners: list[int] = []
    items: list[Any] = []
    for index, request in enumerate(requests):
        try:
            parsed = [parse(row) for row in read_rows(request, interface)]
        except Exception as error:  # noqa: BLE001
            responses[index] = error_response(error, context)
            continue
        owners.extend([index] * len(parsed))
        items.extend(parsed)
    return responses, owners, items


def _answer(responses: list[Any], owners: list[int], results: list[Arrays | BaseException], interface: Interface,
            context: ModelContext) -> None:
    grouped: dict[int, list[Arrays | BaseException]] = {}
    for owner, result in zip(owners, results):
        grouped.setdefault(owner, []).append(result)
    for index, outputs in grouped.items():
        failure = next((r for r in outputs if isinstance(r, BaseException)), None)
        responses[index] = (error_response(failure, context) if failure is not None
                            else response_from(stack_rows(outputs, interface.outputs), interface))


def error_code_name(error: Any) -> str:
    """Triton's name for a BLS error's code (the stub attaches TritonError only after import)."""
    names = ("UNKNOWN", "INTERNAL", "NOT_FOUND", "INVALID_ARG", "UNAVAILABLE", "UNSUPPORTED", "ALREADY_EXISTS",
             "CANCELLED")
    codes = {getattr(pb_utils.TritonError, n): n for n in names if hasattr(pb_utils.TritonError, n)}
    return codes.get(error.code(), "UNKNOWN")


class _FamilyExport:
    """A Triton custom metric family (ensemble/metric_families.py) and its series, one per label tuple, made on first
    use."""

    _KINDS = {COUNTER: "COUNTER", HISTOGRAM: "HISTOGRAM"}

    def __init__(self, family: Family, **series: Any) -> None:
        self.family = pb_utils.MetricFamily(name=family.name, description=family.help,
                                            kind=getattr(pb_utils.MetricFamily, self._KINDS[family.kind]))
        self.labels = family.labels
        self.label_names = family.label_names
        self._series_args = series
        self._metrics: dict[tuple, Any] = {}

    def series(self, labels: tuple) -> Any:
        metric = self._metrics.get(labels)
        if metric is None:
            metric = self.family.Metric(labels=dict(zip(self.label_names, labels)), **self._series_args)
            self._metrics[labels] = metric
        return metric


class HistogramExport(_FamilyExport):
    """Observations kept in Python, each published to a Triton custom histogram when the metrics are flushed: the
    stub-to-server call per observation leaves the request path (server/stub/metrics.py)."""

    def __init__(self, family: Family, buckets: Sequence[float]) -> None:
        super().__init__(family, buckets=list(buckets))

    def publish(self, observations: Sequence[tuple[tuple, float]]) -> None:
        for labels, value in observations:
            self.series(labels).observe(value)


class CounterExport(_FamilyExport):
    """Counts kept in Python (label tuple -> running total) published as a Triton custom counter family."""

    def __init__(self, family: Family) -> None:
        super().__init__(family)
        self._published: dict[tuple, float] = {}

    def declare(self, *leading: str) -> None:
        """Every series whose first labels are `leading` (e.g. the model), over the closed values of the family's
        other labels, at 0 from the start, so that rates and alerts on them work from the first event."""
        for rest in itertools.product(*(label.values for label in self.labels[len(leading):])):
            self.series((*leading, *rest))

    def publish(self, totals: dict[tuple, float]) -> None:
        for labels, total in totals.items():
            delta = total - self._published.get(labels, 0)
            if delta <= 0:
                continue
            self.series(labels).increment(delta)
            self._published[labels] = total
