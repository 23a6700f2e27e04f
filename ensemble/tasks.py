"""The registry of tasks the deployment serves: each is rendered as an ensemble of its two steps around its
engine slot (build/render.py), and its step models run its steps (model_repository/step/1/model.py).

A new task is a folder under ensemble/ with a `task.py` defining `TASK` (or `TASKS`, for a folder serving two,
as postrank/ does: the post-rank and its list judge), plus its name here.
"""

from __future__ import annotations

from importlib import import_module

from ensemble.step import PostStep, PreStep
from ensemble.task import Task

TASK_FOLDERS = ("planner", "cover", "rerank", "pointwise", "postrank")


def _registered(folder: str) -> tuple[Task, ...]:
    module = import_module(f"ensemble.{folder}.task")
    return tuple(getattr(module, "TASKS", None) or (module.TASK,))


TASKS: tuple[Task, ...] = tuple(task for folder in TASK_FOLDERS for task in _registered(folder))


def task_named(name: str) -> Task:
    """A task by its name (its folder)."""
    for task in TASKS:
        if task.name == name:
            return task
    raise KeyError(f"no task {name!r}; tasks: {[t.name for t in TASKS]}")


def step_class(model: str) -> type[PreStep] | type[PostStep]:
    """The step a step model runs, by its deployed name (the `step` parameter)."""
    for task in TASKS:
        if model in task.step_classes():
            return task.step_classes()[model]
    known = [name for task in TASKS for name in task.step_classes()]
    raise KeyError(f"no task has a step model {model!r}; known: {known}")


def entry_of(model: str) -> str:
    """The entry point (ensemble) a step model serves in: outcome metrics carry it, as the BLS's carry its own."""
    for task in TASKS:
        if model in task.step_classes():
            return task.models.entry
    raise KeyError(f"no task has a step model {model!r}")
