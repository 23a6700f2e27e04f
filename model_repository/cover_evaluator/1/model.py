"""A cover grade for a direct caller: from the shared grade store, or the VLM slot (ensemble/cover/evaluator.py)."""

from ensemble.bls.caller import Slot
from ensemble.cover.evaluator import CoverEvaluator
from ensemble.cover.steps import ENTRY
from ensemble.names import Param
from ensemble.tensors import VLM_SLOT
from ensemble.tokenizer import load_tokenizer
from server.stub.adapter import ModelContext, run_batched_async
from server.stub.bls import OutcomeMetrics, StoreMetrics, grade_store_for, timed_engines
from server.stub.metrics import DeferredPublish


class TritonPythonModel:
    def initialize(self, args):
        self.context = ModelContext(args)
        config = self.context.pipeline_config()
        store = grade_store_for(self.context, config)
        engines, steps = timed_engines(self.context.name)
        self.evaluator = CoverEvaluator(config, load_tokenizer(self.context.path(Param.COVER_TOKENIZER_DIR)),
                                        engines, Slot(self.context.param(Param.COVER_ENGINE), VLM_SLOT),
                                        store)
        outcomes = OutcomeMetrics(self.context.name, self.evaluator.counts, ranks=False)
        store_metrics = StoreMetrics(store)
        self.metrics = DeferredPublish(lambda: (outcomes.publish(), store_metrics.publish(), steps.publish()))

    async def execute(self, requests):
        responses = await run_batched_async(requests, self.evaluator.parse, self.evaluator, ENTRY, self.context)
        self.metrics.changed()
        return responses
