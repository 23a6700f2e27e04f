"""VLM engine slot on TensorRT-LLM's LLM API (GPU targets): the tensors of the PyTorch VLM slot."""

from engines.trtllm_vlm import TensorRTLLMVisionEngine
from ensemble.names import Param
from server.stub.adapter import ModelContext
from server.stub.engine_slot import EngineSlot


class TritonPythonModel:
    def initialize(self, args):
        context = ModelContext(args)
        limits = context.pipeline_config().limits
        engine = TensorRTLLMVisionEngine(context.path(Param.CHECKPOINT_DIR),
                                         kv_cache_gib=float(context.param(Param.KV_CACHE_GIB)),
                                         kv_cache_fraction=float(context.param(Param.KV_CACHE_FRACTION)),
                                         device_id=int(context.param(Param.GPU_DEVICE_ID, "0")),
                                         max_decoded_pixels=limits.max_decoded_pixels)
        self.slot = EngineSlot(engine, context, limits, vision=True)

    def execute(self, requests):
        return self.slot.execute(requests)
