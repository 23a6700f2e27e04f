"""`ModelCaller` over Triton BLS: how `rich_media_reranker` reaches the cover evaluator and the re-ranker."""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from ensemble.domain import CoverTask
from ensemble.orchestrator import RerankAnswer, SubCallError
from server.adapter import error_code_name


def _bytes(value: bytes) -> np.ndarray:
    return np.array([[value]], dtype=np.object_)


def _rows(values: list[bytes]) -> np.ndarray:
    return np.array(values, dtype=np.object_).reshape(-1, 1)


class TritonCaller:
    def __init__(self, cover_model: str, rerank_model: str) -> None:
        self.cover_model = cover_model
        self.rerank_model = rerank_model

    async def _call(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]):
        request = pb_utils.InferenceRequest(
            model_name=model, requested_output_names=outputs,
            inputs=[pb_utils.Tensor(name, array) for name, array in inputs.items()])
        response = await request.async_exec()
        if response.has_error():
            raise SubCallError(model, error_code_name(response.error()), response.error().message())
        return {name: pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in outputs}

    async def evaluate_covers(self, query: str, items: list[tuple[bytes, CoverTask]]) -> list[int | None]:
        """All items in one request whose batch dimension is len(items)."""
        encoded = query.encode("utf-8")
        out = await self._call(self.cover_model, {
            "query": _rows([encoded] * len(items)), "image": _rows([image for image, _ in items]),
            "task": _rows([task.value.encode() for _, task in items])}, ["grade"])
        return [int(g) or None for g in out["grade"].reshape(-1)]

    async def rerank(self, request_json: bytes) -> RerankAnswer:
        out = await self._call(self.rerank_model, {"request": _bytes(request_json)}, ["ranked_ids", "result"])
        ranked = [bytes(v).decode("utf-8") for v in out["ranked_ids"].reshape(-1)]
        return RerankAnswer(ranked, json.loads(bytes(out["result"].reshape(-1)[0])))
