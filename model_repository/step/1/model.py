"""A pre or post step of a task ensemble; the `step` parameter names the step model (ensemble/tasks.py)."""

from ensemble.names import Param
from ensemble.outcome_counts import OutcomeCounts
from ensemble.tasks import entry_of, step_class
from ensemble.tokenizer import load_tokenizer
from server.stub.adapter import ModelContext, run_each
from server.stub.bls import OutcomeMetrics


class TritonPythonModel:
    def initialize(self, args):
        self.context = ModelContext(args)
        step = step_class(self.context.param(Param.STEP))
        tokenizer = load_tokenizer(self.context.path(Param.TOKENIZER_DIR))
        self.step = step(self.context.pipeline_config(), tokenizer)
        self.outcomes = None
        if getattr(step, "counts_outcomes", False):  # a post step whose answers the operator alerts on
            self.step.counts = OutcomeCounts()
            self.outcomes = OutcomeMetrics(entry_of(self.context.name), self.step.counts)

    def execute(self, requests):
        responses = run_each(requests, self.step, self.step.interface, self.context)
        if self.outcomes is not None:
            self.outcomes.publish()  # a handful of counter updates, only those that moved
        return responses
