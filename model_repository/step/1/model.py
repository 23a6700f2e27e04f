"""A pre or post step of a task ensemble; the `step` parameter names the step model (ensemble/tasks.py)."""

from ensemble.names import Param
from ensemble.tasks import step_class
from ensemble.tokenizer import load_tokenizer
from server.stub.adapter import ModelContext, run_each


class TritonPythonModel:
    def initialize(self, args):
        self.context = ModelContext(args)
        step = step_class(self.context.param(Param.STEP))
        tokenizer = load_tokenizer(self.context.path(Param.TOKENIZER_DIR))
        self.step = step(self.context.pipeline_config(), tokenizer)

    def execute(self, requests):
        return run_each(requests, self.step, self.step.interface, self.context)
