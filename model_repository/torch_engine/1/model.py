"""Engine slot on PyTorch: tensorrt_llm's tensors in and out, `transformers` generation inside.

The `simulate` parameter swaps in engines/simulated.py (benchmarks of the pipeline overhead, fault tests).
"""

from engines.generation import arrays_from_generation, request_from_arrays
from ensemble.steps import scalar_bytes
from ensemble.tensors import TORCH_LLM_SLOT, VLM_SLOT
from server.adapter import ModelContext, run_batched


class TritonPythonModel:
    def initialize(self, args):
        self.context = ModelContext(args)
        self.vision = self.context.flag("vision", False)
        self.interface = VLM_SLOT if self.vision else TORCH_LLM_SLOT
        simulate = self.context.param("simulate", "")
        if simulate:
            from engines.simulated import SimulatedEngine

            self.engine = SimulatedEngine(simulate)
        else:
            from engines.torch_engine import TorchEngine

            self.engine = TorchEngine(self.context.path("checkpoint_dir"), vision=self.vision,
                                      device=self.context.param("device", "auto"),
                                      dtype=self.context.param("dtype", "auto"))
        self.cap = int(self.context.param("max_new_tokens_cap"))

    def _parse(self, arrays):
        request = request_from_arrays(arrays, vocab_size=self.engine.vocab_size, max_new_tokens_cap=self.cap)
        return request, scalar_bytes(arrays, "image") if self.vision else None

    def _generate(self, parsed):
        requests = [request for request, _ in parsed]
        images = [image for _, image in parsed] if self.vision else None
        results = self.engine.generate(requests, images)
        return [r if isinstance(r, Exception) else arrays_from_generation(r, q.pad_id)
                for r, q in zip(results, requests)]

    def execute(self, requests):
        return run_batched(requests, self._parse, self._generate, self.interface, self.context)
