"""What the deployment needs to know of a task to serve it: its models, its steps and its engine slot."""

from __future__ import annotations

from dataclasses import dataclass

from ensemble.names import VLM_ENGINE, TaskModels
from ensemble.step import PostStep, PreStep
from ensemble.tensors import Interface


@dataclass(frozen=True)
class Task:
    name: str
    """The task's ``[generation.<name>]`` table, and its folder under ensemble/ unless `folder` says otherwise."""
    models: TaskModels
    """Its ensemble (entry point) and step model names (ensemble/names.py)."""
    entry: Interface
    """The ensemble's own tensors."""
    pre: type[PreStep]
    post: type[PostStep]
    engine: str
    """The engine slot it runs on (`names.LLM_ENGINE` or `names.VLM_ENGINE`)."""
    folder: str = ""
    """Its folder under ensemble/ where it shares one with another task ("" = its name)."""
    entry_source: str | None = None
    """The model_repository/ folder of a Python entry model that runs the steps itself and calls the engine
    slot(s) (and so may skip them); None: the entry is an ensemble of the two step models around the slot. A
    task with a Python entry has no step models in the repository."""

    @property
    def home(self) -> str:
        """Its folder under ensemble/."""
        return self.folder or self.name

    @property
    def vision(self) -> bool:
        return self.engine == VLM_ENGINE

    def step_classes(self) -> dict[str, type[PreStep] | type[PostStep]]:
        """Step model name -> the step it runs."""
        return {self.models.pre: self.pre, self.models.post: self.post}
