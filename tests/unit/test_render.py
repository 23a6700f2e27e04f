"""The rendered CPU repository: every config parses with Triton's protobuf and matches ensemble/tensors.py."""

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from build.profile import Checkpoints
from build.render import render, step_models
from ensemble import names
from ensemble import tensors as T
from ensemble.tasks import TASKS


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    return render("cpu", tmp_path_factory.mktemp("r") / "repo", Checkpoints("/ckpt/qwen3", "/ckpt/vl"))


def load(repository: Path, name: str) -> mc.ModelConfig:
    return text_format.Parse((repository / name / "config.pbtxt").read_text(), mc.ModelConfig())


EXPECTED = {**{task.models.entry: task.entry for task in TASKS},
            names.RICH_MEDIA_RERANKER: T.RICH_MEDIA_RERANKER, names.LLM_ENGINE: T.TORCH_LLM_SLOT,
            names.VLM_ENGINE: T.VLM_SLOT, **{name: interface for name, (_, interface) in step_models().items()}}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_matches_tensor_specs(repository, name):
    config = load(repository, name)
    interface = EXPECTED[name]
    assert config.name == name
    assert [(i.name, mc.DataType.Name(i.data_type), tuple(i.dims), i.optional) for i in config.input] == [
        (s.name, s.dtype, s.dims, s.optional) for s in interface.inputs]
    assert [(o.name, mc.DataType.Name(o.data_type), tuple(o.dims)) for o in config.output] == [
        (s.name, s.dtype, s.dims) for s in interface.outputs]


def test_python_models_have_their_code_and_ensembles_none(repository):
    for name in EXPECTED:
        has_code = (repository / name / "1" / "model.py").exists()
        assert has_code == (load(repository, name).platform != "ensemble"), name


def lets_triton_prefetch(config: mc.ModelConfig) -> bool:
    """triton core src/scheduler_utils.cc (PriorityQueue): the batcher prefetches only with no queue bound, no
    timeout override, no default timeout and no priority levels. Without it a request that reaches a
    one-instance model as the previous execution ends can wait out the batcher's 500 ms idle sleep
    (build/pbtxt.py: batching)."""
    batching, policy = config.dynamic_batching, config.dynamic_batching.default_queue_policy
    return (policy.max_queue_size == 0 and not policy.allow_timeout_override
            and policy.default_timeout_microseconds == 0 and batching.priority_levels == 0)


def test_every_batching_model_lets_triton_prefetch(repository):
    for name in EXPECTED:
        config = load(repository, name)
        if config.platform != "ensemble":
            assert config.HasField("dynamic_batching") and lets_triton_prefetch(config), name


def test_a_bounded_queue_is_the_profiles_choice(tmp_path):
    repository = render("cpu", tmp_path / "repo", Checkpoints("/c/q", "/c/v"),
                        overrides={"serving": {"max_queue_size": 8}})
    policy = load(repository, names.RICH_MEDIA_RERANKER).dynamic_batching.default_queue_policy
    assert policy.max_queue_size == 8 and policy.timeout_action == mc.ModelQueuePolicy.REJECT


def test_pipeline_overrides_written_beside_models(repository):
    text = (repository / "pipeline.toml").read_text()
    assert "[generation.rerank]" in text
    assert load(repository, "reranker_preprocess").parameters["pipeline_config"].string_value == "../pipeline.toml"


def test_wiring_check_passes_on_rendered_repository(repository):
    from build.wiring import check_repository

    assert check_repository(repository) == []


def test_wiring_check_catches_a_broken_edge(repository, tmp_path):
    import shutil

    from build.wiring import check_repository

    broken = tmp_path / "broken"
    shutil.copytree(repository, broken)
    path = broken / "reranker" / "config.pbtxt"
    path.write_text(path.read_text().replace('value: "_candidate_ids"', 'value: "_candidate_idz"', 1))
    pbtxt = broken / "planner_postprocess" / "config.pbtxt"
    pbtxt.write_text(pbtxt.read_text().replace("TYPE_INT32", "TYPE_INT64", 1))
    problems = check_repository(broken)
    assert any("_candidate_ids" in p and "nothing produces" in p for p in problems), problems
    assert any("planner_postprocess" in p and "TYPE_INT64" in p for p in problems), problems


def test_wiring_check_catches_an_unused_tensor(repository, tmp_path):
    import shutil

    from build.wiring import check_repository

    broken = tmp_path / "unused"
    shutil.copytree(repository, broken)
    path = broken / "reranker" / "config.pbtxt"
    text = path.read_text().replace('output_map {\n      key: "end_id"', 'output_map {\n      key: "guided_decoding_guide"\n'
                                    '      value: "_spare"\n    }\n    output_map {\n      key: "end_id"', 1)
    path.write_text(text)
    assert any("'_spare'" in p and "never used" in p for p in check_repository(broken))


def test_pipeline_settings_from_the_command_line_reach_the_rendered_config(tmp_path):
    import tomllib

    from bench.runner import parse_settings

    settings = parse_settings(["generation.rerank.thinking_budget=0", "cover_cache.enabled=false",
                               "limits.max_candidates=60"])
    assert settings == {"generation": {"rerank": {"thinking_budget": 0}}, "cover_cache": {"enabled": False},
                        "limits": {"max_candidates": 60}}
    repository = render("cpu", tmp_path / "repo", Checkpoints("/c/q", "/c/v"),
                        overrides={"pipeline": settings, "serving": {"max_queue_size": 4}})
    written = tomllib.loads((repository / "pipeline.toml").read_text())
    assert written["generation"]["rerank"]["thinking_budget"] == 0
    assert written["generation"]["rerank"]["max_new_tokens"] == 32  # the cpu profile's own value is kept
    assert written["cover_cache"]["enabled"] is False
    queue = load(repository, "rich_media_reranker").dynamic_batching.default_queue_policy.max_queue_size
    assert queue == 4


def test_engine_slots_serve_the_checkpoints_weights_unless_the_target_says_random(repository, tmp_path):
    for slot in (names.LLM_ENGINE, names.VLM_ENGINE):
        assert load(repository, slot).parameters["weights"].string_value == "checkpoint", slot
    shaped = render("cpu", tmp_path / "repo", Checkpoints("/c/q", "/c/v"), overrides={"target": {"weights": "random"}})
    for slot in (names.LLM_ENGINE, names.VLM_ENGINE):
        assert load(shaped, slot).parameters["weights"].string_value == "random", slot
