"""`post_ranker` and `list_judge`: a post-ranker request in, one call to the text slot with its soft tokens and LoRA
adapter, the permutation or the verdict out (ensemble/postrank/runner.py). The model's name says which."""

from ensemble import names
from ensemble.bls.caller import Slot
from ensemble.names import EngineKind, Param
from ensemble.outcome_counts import OutcomeCounts
from ensemble.postrank.runner import PostRanking
from ensemble.postrank.steps import ENTRY, JUDGE_ENTRY
from ensemble.tensors import llm_slot
from ensemble.tokenizer import load_tokenizer
from server.stub.adapter import ModelContext, run_batched_async
from server.stub.bls import OutcomeMetrics, timed_engines
from server.stub.metrics import DeferredPublish


class TritonPythonModel:
    def initialize(self, args):
        self.context = ModelContext(args)
        engines, steps = timed_engines(self.context.name)
        engine = EngineKind(self.context.param(Param.LLM_ENGINE_KIND))
        self.ranking = PostRanking(self.context.pipeline_config(), engines,
                                   Slot(self.context.param(Param.RERANK_ENGINE), llm_slot(engine)),
                                   load_tokenizer(self.context.path(Param.RERANK_TOKENIZER_DIR)))
        self.judge = self.context.name == names.LIST_JUDGE.entry
        publish = [steps.publish]
        if not self.judge:
            self.ranking.post.counts = OutcomeCounts()
            publish.append(OutcomeMetrics(self.context.name, self.ranking.post.counts).publish)
        self.metrics = DeferredPublish(lambda: [p() for p in publish])

    async def execute(self, requests):
        if self.judge:
            responses = await run_batched_async(requests, self.ranking.parse_judge, self.ranking.judge, JUDGE_ENTRY,
                                                self.context)
        else:
            responses = await run_batched_async(requests, self.ranking.parse, self.ranking.post_rank_arrays, ENTRY,
                                                self.context)
        self.metrics.changed()
        return responses
