"""VLM engine slot on TensorRT-LLM's LLM API (GPU targets): the tensors of the PyTorch VLM slot."""

from engines.trtllm_vlm import TensorRTLLMVisionEngine
from server.adapter import ModelContext
from server.engine_slot import EngineSlot


class TritonPythonModel:
    def initialize(self, args):
        context = ModelContext(args)
        engine = TensorRTLLMVisionEngine(context.path("checkpoint_dir"), kv_cache_gib=float(context.param("kv_cache_gib")),
                                         device_id=int(context.param("gpu_device_id", "0")))
        self.slot = EngineSlot(engine, context, vision=True)

    def execute(self, requests):
        return self.slot.execute(requests)
