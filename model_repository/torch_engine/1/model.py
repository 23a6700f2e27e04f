"""Engine slot on PyTorch: tensorrt_llm's tensors in and out, `transformers` generation inside.

The `simulate` parameter swaps in engines/simulated.py (benchmarks of the pipeline overhead, fault tests).
"""

from ensemble.names import Param, lora_adapters
from server.stub.adapter import ModelContext
from server.stub.engine_slot import EngineSlot


class TritonPythonModel:
    def initialize(self, args):
        context = ModelContext(args)
        limits = context.pipeline_config().limits
        vision = context.flag(Param.VISION, False)
        simulate = context.param(Param.SIMULATE, "")
        if simulate:
            from engines.simulated import SimulatedEngine
            from ensemble.postrank.checkpoint import base_text_config
            from ensemble.tokenizer import load_tokenizer

            tokenizer = load_tokenizer(context.path(Param.CHECKPOINT_DIR)) if simulate in ("valid", "prose") else None
            hidden = 0 if vision else int(base_text_config(context.path(Param.CHECKPOINT_DIR)).hidden_size)
            engine = SimulatedEngine(simulate, tokenizer=tokenizer, hidden_size=hidden,
                                     adapters=lora_adapters(context.param(Param.LORA_ADAPTERS, "")))
        else:
            from engines.torch_engine import TorchEngine

            engine = TorchEngine(context.path(Param.CHECKPOINT_DIR), vision=vision,
                                 device=context.param(Param.DEVICE, "auto"), dtype=context.param(Param.DTYPE, "auto"),
                                 random_weights=context.param(Param.WEIGHTS, "checkpoint") == "random",
                                 max_decoded_pixels=limits.max_decoded_pixels,
                                 adapters=lora_adapters(context.param(Param.LORA_ADAPTERS, "")))
        self.slot = EngineSlot(engine, context, limits, vision=vision)

    def execute(self, requests):
        return self.slot.execute(requests)
