"""A pointwise grade per (query, candidate) row: the text slot, or the VLM slot for rows with a cover
(ensemble/pointwise/grader.py)."""

from ensemble.bls.caller import Slot
from ensemble.names import EngineKind, Param
from ensemble.pointwise.grader import PointwiseGrader
from ensemble.pointwise.steps import ENTRY
from ensemble.tensors import VLM_SLOT, llm_slot
from ensemble.tokenizer import load_tokenizer
from server.stub.adapter import ModelContext, run_batched_async
from server.stub.bls import OutcomeMetrics, timed_engines
from server.stub.metrics import DeferredPublish


class TritonPythonModel:
    def initialize(self, args):
        self.context = ModelContext(args)
        engine = EngineKind(self.context.param(Param.LLM_ENGINE_KIND))
        engines, steps = timed_engines(self.context.name)
        self.grader = PointwiseGrader(
            self.context.pipeline_config(), engines,
            text_slot=Slot(self.context.param(Param.RERANK_ENGINE), llm_slot(engine)),
            vision_slot=Slot(self.context.param(Param.COVER_ENGINE), VLM_SLOT),
            text_tokenizer=load_tokenizer(self.context.path(Param.RERANK_TOKENIZER_DIR)),
            vision_tokenizer=load_tokenizer(self.context.path(Param.COVER_TOKENIZER_DIR)),
            one_pair_per_text_call=engine is EngineKind.TENSORRTLLM,
            rows_per_call=int(self.context.param(Param.ENGINE_BATCH_SIZE, "64")))
        outcomes = OutcomeMetrics(self.context.name, self.grader.counts, ranks=False)
        self.metrics = DeferredPublish(lambda: (outcomes.publish(), steps.publish()))

    async def execute(self, requests):
        responses = await run_batched_async(requests, self.grader.parse, self.grader, ENTRY, self.context)
        self.metrics.changed()
        return responses
