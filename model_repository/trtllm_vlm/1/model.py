"""VLM engine slot on TensorRT-LLM's LLM API (GPU targets): the tensors of the PyTorch VLM slot."""

from engines.generation import arrays_from_generation, request_from_arrays
from engines.trtllm_vlm import TensorRTLLMVisionEngine
from ensemble.steps import scalar_bytes
from ensemble.tensors import VLM_SLOT
from server.adapter import ModelContext, run_batched


class TritonPythonModel:
    def initialize(self, args):
        self.context = ModelContext(args)
        self.engine = TensorRTLLMVisionEngine(self.context.path("checkpoint_dir"),
                                              kv_cache_gib=float(self.context.param("kv_cache_gib")),
                                              device_id=int(self.context.param("gpu_device_id", "0")))
        self.cap = int(self.context.param("max_new_tokens_cap"))

    def _parse(self, arrays):
        request = request_from_arrays(arrays, vocab_size=self.engine.vocab_size, max_new_tokens_cap=self.cap)
        return request, scalar_bytes(arrays, "image")

    def _generate(self, parsed):
        requests = [request for request, _ in parsed]
        results = self.engine.generate(requests, [image for _, image in parsed])
        return [r if isinstance(r, Exception) else arrays_from_generation(r, q.pad_id)
                for r, q in zip(results, requests)]

    def execute(self, requests):
        return run_batched(requests, self._parse, self._generate, VLM_SLOT, self.context)
