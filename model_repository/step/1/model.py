"""A pre or post step of an ensemble; the `step` parameter picks which (ensemble/steps.py)."""

from ensemble.steps import STEPS
from ensemble.tokenizer import load_tokenizer
from server.adapter import ModelContext, run_each


class TritonPythonModel:
    def initialize(self, args):
        self.context = ModelContext(args)
        step_class = STEPS[self.context.param("step")]
        tokenizer = load_tokenizer(self.context.path("tokenizer_dir"))
        self.step = step_class(self.context.pipeline_config(), tokenizer)

    def execute(self, requests):
        return run_each(requests, self.step, self.step.interface, self.context)
