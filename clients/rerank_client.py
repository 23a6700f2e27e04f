"""gRPC client of the Rich-Media Re-Ranker deployment; hides tensors, raises `RerankError` with Triton's message.

    client = RerankClient("localhost:8001")      # or a Connection: replicas, retries, TLS, inference key
    result = client.rerank("北京旅游攻略", candidates, cover_images={"doc-3": jpeg_bytes})
    print(result.ranked_ids)

`AsyncRerankClient` has the same methods as coroutines (tritonclient.grpc.aio).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcclient_aio
from tritonclient.utils import InferenceServerException

from clients.connection import Connection, as_connection, close_once
from clients.pointwise import POINTWISE_ROWS_PER_CALL, PointwiseGrade, covers_of, pointwise_grades, pointwise_inputs
from ensemble import names
from ensemble import tensors as T

DEFAULT_TIMEOUT_S = 30.0


_KEY_REFUSAL = "This protocol is restricted"
KEY_HINT = " (the server wants its inference key: --inference-key name=value or RMR_INFERENCE_KEY)"


class RerankError(RuntimeError):
    """Triton answered with an error. `status` is the gRPC status (``StatusCode.INVALID_ARGUMENT``, …)."""

    def __init__(self, model: str, status: str | None, message: str) -> None:
        hint = KEY_HINT if _KEY_REFUSAL in message else ""
        super().__init__(f"{model}: {status}: {message}{hint}")
        self.model, self.status, self.message = model, status or "", message

    @property
    def is_key_refused(self) -> bool:
        """Triton refused the call for want of the inference key (it answers UNAVAILABLE, so it was retried)."""
        return _KEY_REFUSAL in self.message

    @property
    def is_invalid_argument(self) -> bool:
        return "INVALID_ARGUMENT" in self.status

    @property
    def is_unavailable(self) -> bool:
        return "UNAVAILABLE" in self.status

    @property
    def is_deadline_exceeded(self) -> bool:
        return "DEADLINE_EXCEEDED" in self.status


@dataclass(frozen=True, slots=True)
class Plan:
    query_type: str
    sub_queries: list[dict[str, Any]]
    degraded: bool
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CoverGrade:
    grade: int | None
    """1..4, None when the model gave no usable grade."""
    reasoning: str


@dataclass(frozen=True, slots=True)
class RerankResult:
    ranked_ids: list[str]
    response: dict[str, Any]
    """The full response: reasoning, cover grades, valid, repairs, fallback, timings."""

    @property
    def fallback(self) -> bool:
        return bool(self.response.get("fallback"))


def _input(spec: T.TensorSpec, values: Sequence[Any] | np.ndarray) -> grpcclient.InferInput:
    array = np.asarray(values, dtype=spec.numpy_dtype).reshape(1, -1)
    tensor = grpcclient.InferInput(spec.name, list(array.shape), spec.wire_dtype)
    tensor.set_data_from_numpy(array)
    return tensor


def _text(array: np.ndarray) -> str:
    return bytes(array.reshape(-1)[0]).decode("utf-8")


def entry_interface(model: str) -> T.Interface:
    """The tensors of an entry point: a registered task's ensemble, or the BLS."""
    from ensemble.tasks import TASKS

    entries = {task.models.entry: task.entry for task in TASKS} | {names.RICH_MEDIA_RERANKER: T.RICH_MEDIA_RERANKER}
    if model not in entries:
        raise ValueError(f"{model!r} is no entry point; entry points: {sorted(entries)}")
    return entries[model]


def task_inputs(model: str, values: Mapping[str, Any]) -> list[grpcclient.InferInput]:
    """The inputs of one call to `model` from plain values (text is encoded as UTF-8 for BYTES tensors)."""
    interface = entry_interface(model)
    known = {spec.name for spec in interface.inputs}
    if unknown := sorted(set(values) - known):
        raise ValueError(f"{model} has no input(s) {unknown}; its inputs: {sorted(known)}")
    inputs = []
    for spec in interface.inputs:
        if spec.name not in values:
            if not spec.optional:
                raise ValueError(f"{model} needs input {spec.name!r}")
            continue
        value = values[spec.name]
        items = [value] if isinstance(value, (str, bytes)) or np.isscalar(value) else list(value)
        if spec.dtype == "TYPE_STRING":
            items = [v.encode("utf-8") if isinstance(v, str) else v for v in items]
        array = np.empty(len(items), dtype=spec.numpy_dtype)
        array[:] = items
        inputs.append(_input(spec, array))
    return inputs


def _body(model: str, query: str, candidates: Sequence[Mapping[str, Any]], **fields: Any
          ) -> list[grpcclient.InferInput]:
    """A post-ranker request: each candidate as the post-ranker reads one, its id and features (a re-rank
    candidate's other fields stay here)."""
    items = [{"id": c["id"], "features": c.get("features", {})} for c in candidates]
    return task_inputs(model, {"request": json.dumps({"query": query, "candidates": items, **fields},
                                                     ensure_ascii=False)})


def rerank_inputs(query: str, candidates: Sequence[Mapping[str, Any]], *,
                  cover_images: Mapping[str, bytes] | Sequence[bytes] | None = None,
                  options: Mapping[str, Any] | None = None, user: Mapping[str, Any] | None = None
                  ) -> list[grpcclient.InferInput]:
    """`user`: the user's features (options.post_rank reads them, with each candidate's ``features``)."""
    body: dict[str, Any] = {"query": query, "candidates": list(candidates)}
    if options:
        body["options"] = dict(options)
    if user:
        body["user"] = dict(user)
    inputs = [_input(T.REQUEST, [json.dumps(body, ensure_ascii=False).encode("utf-8")])]
    if cover_images is not None:
        if isinstance(cover_images, Mapping):
            images = [cover_images.get(str(c["id"]), b"") for c in candidates]
        else:
            images = list(cover_images)
        inputs.append(_input(T.COVER_IMAGES, np.array(images, dtype=np.object_)))
    return inputs


def plan_inputs(query: str, session: Sequence[str]) -> list[grpcclient.InferInput]:
    inputs = [_input(T.QUERY, [query.encode("utf-8")])]
    if session:
        inputs.append(_input(T.SESSION, [s.encode("utf-8") for s in session]))
    return inputs


def cover_inputs(query: str, image: bytes, task: str) -> list[grpcclient.InferInput]:
    return [_input(T.QUERY, [query.encode("utf-8")]), _input(T.IMAGE, np.array([image], dtype=np.object_)),
            _input(T.TASK, [task.encode("utf-8")])]


def _plan(result) -> Plan:
    raw = json.loads(_text(result.as_numpy("plan")))
    return Plan(raw["query_type"], raw["sub_queries"], raw["degraded"], raw)


def _grade(result) -> CoverGrade:
    grade = int(result.as_numpy("grade").reshape(-1)[0])
    return CoverGrade(grade or None, _text(result.as_numpy("reasoning")))


def _ranking(result, output: str = "response") -> RerankResult:
    ids = [bytes(v).decode("utf-8") for v in result.as_numpy("ranked_ids").reshape(-1)]
    return RerankResult(ids, json.loads(_text(result.as_numpy(output))))


class RerankClient:
    """Synchronous client. `target`: an address or a `Connection` (clients/connection.py: balancing over replicas,
    retries on UNAVAILABLE, TLS, the inference key). `timeout_s` is the client-side deadline of every call, retries
    included (gRPC cancels on expiry)."""

    rerank_model = names.RICH_MEDIA_RERANKER
    rerank_step_model = names.RERANK.entry
    planner_model = names.PLANNER.entry
    cover_model = names.COVER.entry
    pointwise_model = names.POINTWISE.entry
    postrank_model = names.POSTRANK.entry
    judge_model = names.LIST_JUDGE.entry

    def __init__(self, target: str | Connection = "localhost:8001", *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 headers: Mapping[str, str] | None = None) -> None:
        self.connection = as_connection(target)
        self._client = grpcclient.InferenceServerClient(**self.connection.client_kwargs())
        self.timeout_s = timeout_s
        self.headers = self.connection.headers() | dict(headers or {})

    def _infer(self, model: str, inputs, outputs: Sequence[str], timeout_s: float | None):
        try:
            return self._client.infer(model, inputs, outputs=[grpcclient.InferRequestedOutput(o) for o in outputs],
                                      client_timeout=timeout_s or self.timeout_s, headers=self.headers)
        except InferenceServerException as exc:
            raise RerankError(model, exc.status(), exc.message()) from None

    def infer(self, model: str, values: Mapping[str, Any], *, timeout_s: float | None = None
              ) -> dict[str, np.ndarray]:
        """Any entry point by name, inputs as plain values, every output as numpy (batch dimension dropped):
        a task added to the registry is callable before it has a method of its own."""
        outputs = [spec.name for spec in entry_interface(model).outputs]
        result = self._infer(model, task_inputs(model, values), outputs, timeout_s)
        return {name: result.as_numpy(name)[0] for name in outputs}

    def plan(self, query: str, session: Sequence[str] = (), *, timeout_s: float | None = None) -> Plan:
        return _plan(self._infer(self.planner_model, plan_inputs(query, session), ["plan"], timeout_s))

    def evaluate_cover(self, image: bytes, *, task: str = "quality", query: str = "",
                       timeout_s: float | None = None) -> CoverGrade:
        return _grade(self._infer(self.cover_model, cover_inputs(query, image, task), ["grade", "reasoning"],
                                  timeout_s))

    def rerank(self, query: str, candidates: Sequence[Mapping[str, Any]], *,
               cover_images: Mapping[str, bytes] | Sequence[bytes] | None = None,
               options: Mapping[str, Any] | None = None, timeout_s: float | None = None,
               user: Mapping[str, Any] | None = None) -> RerankResult:
        inputs = rerank_inputs(query, candidates, cover_images=cover_images, options=options, user=user)
        return _ranking(self._infer(self.rerank_model, inputs, ["ranked_ids", "response"], timeout_s))

    def grade(self, query: str, candidates: Sequence[Mapping[str, Any]], *, grader: str = "relevance",
              cover_images: Mapping[str, bytes] | Sequence[bytes] | None = None,
              timeout_s: float | None = None) -> list[PointwiseGrade]:
        """A pointwise grade per candidate (`pointwise_grader`): from its text, or with the VLM where it has a
        cover. Sent POINTWISE_ROWS_PER_CALL pairs a request; the server batches them over the engine slots."""
        covers = covers_of(candidates, cover_images)
        grades: list[PointwiseGrade] = []
        for start in range(0, len(candidates), POINTWISE_ROWS_PER_CALL):
            part = candidates[start:start + POINTWISE_ROWS_PER_CALL]
            inputs = pointwise_inputs(query, part, grader,
                                      None if covers is None else covers[start:start + len(part)])
            grades += pointwise_grades(self._infer(self.pointwise_model, inputs, ["grade", "reasoning"], timeout_s), part)
        return grades

    def rerank_step(self, query: str, candidates: Sequence[Mapping[str, Any]], *,
                    options: Mapping[str, Any] | None = None, timeout_s: float | None = None) -> RerankResult:
        """The listwise step alone (the `reranker` ensemble): no cover grading; `response` is its outcome."""
        inputs = rerank_inputs(query, candidates, options=options)
        return _ranking(self._infer(self.rerank_step_model, inputs, ["ranked_ids", "result"], timeout_s), "result")

    def post_rank(self, query: str, candidates: Sequence[Mapping[str, Any]], *, timeout_s: float | None = None,
                  **fields: Any) -> RerankResult:
        """The post-ranker (`post_ranker`): candidates (their ``id`` and ``features``) in their ranked order;
        `fields`: ``user``, ``options`` (ensemble/postrank/request.py). `response` is its outcome."""
        inputs = _body(self.postrank_model, query, candidates, **fields)
        return _ranking(self._infer(self.postrank_model, inputs, ["ranked_ids", "result"], timeout_s), "result")

    def judge(self, query: str, candidates: Sequence[Mapping[str, Any]], list_a: Sequence[str], list_b: Sequence[str],
              *, timeout_s: float | None = None, **fields: Any) -> dict[str, Any]:
        """Which of two orders of `candidates` is better (`list_judge`): ``{"better": "A" | "B" | None, ...}``."""
        inputs = _body(self.judge_model, query, candidates, list_a=list(list_a), list_b=list(list_b), **fields)
        return json.loads(_text(self._infer(self.judge_model, inputs, ["result"], timeout_s).as_numpy("result")))

    def cached_ranking(self, query: str, *, store_url: str, version: str | None = None) -> dict[str, Any] | None:
        """The T+1 job's stored result of `query` (clients/batch/results.py), or None: no model call."""
        from clients.batch.results import cached_ranking
        from store import open_store

        if getattr(self, "_results", None) is None or self._results.url != store_url:
            self._results = open_store(store_url, timeout_s=1.0, create=False)
        return cached_ranking(self._results, query, version=version)

    def close(self) -> None:
        close_once(self._client)

    def __enter__(self) -> RerankClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncRerankClient:
    """The same calls as coroutines, for asyncio services."""

    def __init__(self, target: str | Connection = "localhost:8001", *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 headers: Mapping[str, str] | None = None) -> None:
        self.connection = as_connection(target)
        self._client = grpcclient_aio.InferenceServerClient(**self.connection.client_kwargs())
        self.timeout_s = timeout_s
        self.headers = self.connection.headers() | dict(headers or {})

    async def _infer(self, model: str, inputs, outputs: Sequence[str], timeout_s: float | None):
        try:
            return await self._client.infer(
                model, inputs, outputs=[grpcclient.InferRequestedOutput(o) for o in outputs],
                client_timeout=timeout_s or self.timeout_s, headers=self.headers)
        except InferenceServerException as exc:
            raise RerankError(model, exc.status(), exc.message()) from None

    async def plan(self, query: str, session: Sequence[str] = (), *, timeout_s: float | None = None) -> Plan:
        return _plan(await self._infer(RerankClient.planner_model, plan_inputs(query, session), ["plan"], timeout_s))

    async def evaluate_cover(self, image: bytes, *, task: str = "quality", query: str = "",
                             timeout_s: float | None = None) -> CoverGrade:
        return _grade(await self._infer(RerankClient.cover_model, cover_inputs(query, image, task),
                                        ["grade", "reasoning"], timeout_s))

    async def rerank(self, query: str, candidates: Sequence[Mapping[str, Any]], *,
                     cover_images: Mapping[str, bytes] | Sequence[bytes] | None = None,
                     options: Mapping[str, Any] | None = None, timeout_s: float | None = None,
                     user: Mapping[str, Any] | None = None) -> RerankResult:
        inputs = rerank_inputs(query, candidates, cover_images=cover_images, options=options, user=user)
        return _ranking(await self._infer(RerankClient.rerank_model, inputs, ["ranked_ids", "response"], timeout_s))

    async def grade(self, query: str, candidates: Sequence[Mapping[str, Any]], *, grader: str = "relevance",
                    cover_images: Mapping[str, bytes] | Sequence[bytes] | None = None,
                    timeout_s: float | None = None) -> list[PointwiseGrade]:
        """`RerankClient.grade`, its requests all out together."""
        covers = covers_of(candidates, cover_images)
        parts = [(start, candidates[start:start + POINTWISE_ROWS_PER_CALL])
                 for start in range(0, len(candidates), POINTWISE_ROWS_PER_CALL)]
        results = await asyncio.gather(*(
            self._infer(RerankClient.pointwise_model,
                        pointwise_inputs(query, part, grader, None if covers is None else covers[s:s + len(part)]),
                        ["grade", "reasoning"], timeout_s) for s, part in parts))
        return [grade for (_, part), result in zip(parts, results) for grade in pointwise_grades(result, part)]

    async def rerank_step(self, query: str, candidates: Sequence[Mapping[str, Any]], *,
                          options: Mapping[str, Any] | None = None, timeout_s: float | None = None) -> RerankResult:
        inputs = rerank_inputs(query, candidates, options=options)
        return _ranking(await self._infer(RerankClient.rerank_step_model, inputs, ["ranked_ids", "result"],
                                          timeout_s), "result")

    async def close(self) -> None:
        await self._client.close()
