"""What every engine-slot model.py does: tensorrt_llm's tensors in, one batched `generate`, tensors out.

Any engine with `vocab_size` and `generate(requests, images)` fits: PyTorch, TensorRT-LLM's LLM API, simulated.
A slot is not an entry point, yet a client can reach it: it enforces the pipeline's limits itself (output
length, image headers), as the entry points do.
"""

from __future__ import annotations

from typing import Any

from engines.generation import arrays_from_generation, request_from_arrays
from ensemble.arrays import scalar_bytes
from ensemble.config import Limits
from ensemble.cover.grade_cache import image_key
from ensemble.cover.image import CheckedImages
from ensemble.tensors import TORCH_LLM_SLOT, VLM_SLOT
from server.stub.adapter import ModelContext, run_batched


class EngineSlot:
    def __init__(self, engine: Any, context: ModelContext, limits: Limits, *, vision: bool) -> None:
        self.engine = engine
        self.context = context
        self.vision = vision
        self.interface = VLM_SLOT if vision else TORCH_LLM_SLOT
        self.limits = limits
        self.checked = CheckedImages(limits)

    def _parse(self, arrays):
        request = request_from_arrays(arrays, vocab_size=self.engine.vocab_size,
                                      max_new_tokens=self.limits.max_new_tokens,
                                      max_answer_ids=self.limits.max_window_candidates,
                                      hidden_size=getattr(self.engine, "hidden_size", 0),
                                      adapters=getattr(self.engine, "adapters", {}))
        if not self.vision:
            return request, None
        image = scalar_bytes(arrays, "image")
        self.checked.check(image, image_key(image))
        return request, image

    def _generate(self, parsed):
        requests = [request for request, _ in parsed]
        images = [image for _, image in parsed] if self.vision else None
        results = self.engine.generate(requests, images)
        return [r if isinstance(r, Exception) else arrays_from_generation(r, q.pad_id)
                for r, q in zip(results, requests)]

    def execute(self, requests):
        return run_batched(requests, self._parse, self._generate, self.interface, self.context)
