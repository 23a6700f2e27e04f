"""Engine slot on PyTorch: tensorrt_llm's tensors in and out, `transformers` generation inside.

The `simulate` parameter swaps in engines/simulated.py (benchmarks of the pipeline overhead, fault tests).
"""

from server.adapter import ModelContext
from server.engine_slot import EngineSlot


class TritonPythonModel:
    def initialize(self, args):
        context = ModelContext(args)
        vision = context.flag("vision", False)
        simulate = context.param("simulate", "")
        if simulate:
            from engines.simulated import SimulatedEngine
            from ensemble.tokenizer import load_tokenizer

            tokenizer = load_tokenizer(context.path("checkpoint_dir")) if simulate == "valid" else None
            engine = SimulatedEngine(simulate, tokenizer=tokenizer)
        else:
            from engines.torch_engine import TorchEngine

            engine = TorchEngine(context.path("checkpoint_dir"), vision=vision,
                                 device=context.param("device", "auto"), dtype=context.param("dtype", "auto"))
        self.slot = EngineSlot(engine, context, vision=vision)

    def execute(self, requests):
        return self.slot.execute(requests)
