"""Glue between Triton's Python backend and `ensemble`; imported only inside the Triton stub.

Error codes are chosen here and only here: `RequestError` -> INVALID_ARG for that request alone;
anything else -> the traceback to the server log and a short INTERNAL message to the client.
`execute` never raises, so one bad request never fails the batch it arrived in.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from ensemble.config import ConfigError, PipelineConfig
from ensemble.errors import RequestError
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
        return PipelineConfig.load(self.path("pipeline_config") if self.params.get("pipeline_config") else None)


def read_inputs(request: Any, interface: Interface) -> Arrays:
    """Inputs of one request without the batch dimension; optional inputs may be absent."""
    arrays: Arrays = {}
    for spec in interface.inputs:
        tensor = pb_utils.get_input_tensor_by_name(request, spec.name)
        if tensor is None:
            if spec.optional:
                continue
            raise RequestError(spec.name, "is a required input")
        array = tensor.as_numpy()
        if array.ndim == 0 or array.shape[0] != 1:
            raise RequestError(spec.name, "must have batch size 1 (send one request per query)",
                               value=list(array.shape))
        arrays[spec.name] = array[0]
    return arrays


def response_from(outputs: Arrays, interface: Interface) -> Any:
    tensors = [pb_utils.Tensor(spec.name, np.asarray(outputs[spec.name], dtype=spec.numpy_dtype)[None, ...])
               for spec in interface.outputs if spec.name in outputs]
    return pb_utils.InferenceResponse(output_tensors=tensors)


def error_response(error: BaseException, context: ModelContext) -> Any:
    if isinstance(error, RequestError):
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error), pb_utils.TritonError.INVALID_ARG))
    context.logger.log_error(f"{context.name}: {''.join(traceback.format_exception(error))}")
    message = f"{context.name}: internal error ({type(error).__name__}); see the server log"
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, pb_utils.TritonError.INTERNAL))


def run_each(requests: Sequence[Any], step: Callable[[Arrays], Arrays], interface: Interface,
             context: ModelContext) -> list[Any]:
    """One response per request, in order; each request fails alone."""
    responses = []
    for request in requests:
        try:
            responses.append(response_from(step(read_inputs(request, interface)), interface))
        except Exception as error:  # noqa: BLE001 - becomes this request's error response
            responses.append(error_response(error, context))
    return responses


def run_batched(requests: Sequence[Any], parse: Callable[[Arrays], Any],
                batch: Callable[[list[Any]], list[Arrays | BaseException]], interface: Interface,
                context: ModelContext) -> list[Any]:
    """Parse each request alone, run the valid ones as one batch, answer each in order."""
    responses: list[Any] = [None] * len(requests)
    valid: list[tuple[int, Any]] = []
    for index, request in enumerate(requests):
        try:
            valid.append((index, parse(read_inputs(request, interface))))
        except Exception as error:  # noqa: BLE001
            responses[index] = error_response(error, context)
    if valid:
        try:
            results = batch([item for _, item in valid])
        except Exception as error:  # noqa: BLE001 - the batch failed as a whole: each request says so
            results = [error] * len(valid)
        for (index, _), result in zip(valid, results):
            responses[index] = (error_response(result, context) if isinstance(result, BaseException)
                                else response_from(result, interface))
    return responses


def error_code_name(error: Any) -> str:
    """Triton's name for a BLS error's code (the stub attaches TritonError only after import)."""
    names = ("UNKNOWN", "INTERNAL", "NOT_FOUND", "INVALID_ARG", "UNAVAILABLE", "UNSUPPORTED", "ALREADY_EXISTS",
             "CANCELLED")
    codes = {getattr(pb_utils.TritonError, n): n for n in names if hasattr(pb_utils.TritonError, n)}
    return codes.get(error.code(), "UNKNOWN")
