"""The layout's promises: one folder per task, one home per deployed name, small modules."""

import ast
from pathlib import Path

import pytest

from ensemble import names
from ensemble.config import PipelineConfig
from ensemble.tasks import TASKS, step_class, task_named

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for folder in ("ensemble", "engines", "server", "build", "clients", "bench", "model_repository")
           for p in (ROOT / folder).rglob("*.py") if "out" not in p.relative_to(ROOT).parts]
"""The project's own modules (not what benchmarks write under bench/out/)."""
MODEL_NAMES = {*names.ENTRY_POINTS, *names.ENGINE_SLOTS,
               *(m for t in (names.PLANNER, names.COVER, names.RERANK) for m in (t.pre, t.post))}


def test_each_deployed_model_name_is_a_literal_in_names_py_only():
    found = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in MODEL_NAMES:
                found.setdefault(node.value, set()).add(str(path.relative_to(ROOT)))
    assert found == {name: {"ensemble/names.py"} for name in MODEL_NAMES}


def test_no_module_over_350_lines():
    long = {str(p.relative_to(ROOT)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > 350}
    assert long == {}


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_a_task_is_one_folder_with_its_schema_template_prompt_reading_and_steps(task):
    folder = ROOT / "ensemble" / task.home
    assert {"request.py", "prompt.py", "answer.py", "steps.py", "task.py"} <= {p.name for p in folder.iterdir()}
    assert list(folder.glob("*.toml")), "its prompt template file(s)"
    assert task_named(task.name) is task
    assert step_class(task.models.pre) is task.pre and step_class(task.models.post) is task.post
    assert PipelineConfig.load().generation_for(task.name).max_input_len > 0


def test_an_unknown_step_model_names_the_known_ones():
    with pytest.raises(KeyError, match="reranker_preprocess"):
        step_class("setwise_preprocess")


def test_a_new_task_is_rendered_and_wired_from_its_registration_alone(monkeypatch, tmp_path):
    """docs/architecture.md's checklist: a Task (here the planner's steps under new names) plus its
    [generation.<name>] table is all rendering and the wiring check need."""
    import build.render
    from build.profile import Checkpoints
    from build.wiring import check_repository
    from ensemble.planner.steps import ENTRY, PlannerPost, PlannerPre
    from ensemble.task import Task

    class SetwisePre(PlannerPre):
        task = "setwise"

    setwise = Task("setwise", names.TaskModels("setwise_ranker", "setwise_preprocess", "setwise_postprocess"),
                   ENTRY, SetwisePre, PlannerPost, names.LLM_ENGINE)
    monkeypatch.setattr(build.render, "TASKS", (*TASKS, setwise))
    generation = {"setwise": {"max_input_len": 512, "max_new_tokens": 16}}
    repository = build.render.render("cpu", tmp_path / "repo", Checkpoints("/c/q", "/c/v"),
                                     overrides={"pipeline": {"generation": generation}})
    assert {"setwise_ranker", "setwise_preprocess", "setwise_postprocess"} <= {p.name for p in repository.iterdir()}
    assert check_repository(repository) == []
    assert (repository / "setwise_preprocess" / "1" / "model.py").exists()
