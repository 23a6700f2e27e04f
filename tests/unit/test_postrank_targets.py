"""The post-ranker on the GPU targets: the tensorrtllm slot takes its soft tokens and adapter, the ensemble feeds them,
the engine is built for them. Keys and flags as TensorRT-LLM 1.2's sources name them (build/trtllm_repository.py,
build/engine.py)."""

import json

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from build.engine import build_commands, plan_engine
from build.model_shape import QWEN3_4B, BuildError
from build.profile import Checkpoints, Profile
from build.render import render
from build.wiring import check_repository
from ensemble import names

SOFT = {"prompt_embedding_table": ("TYPE_FP16", [-1, -1]), "prompt_vocab_size": ("TYPE_INT32", [1]),
        "prompt_table_extra_ids": ("TYPE_UINT64", [-1]), "lora_task_id": ("TYPE_UINT64", [1]),
        "lora_weights": ("TYPE_FP16", [-1, -1]), "lora_config": ("TYPE_INT32", [-1, 3])}
"""tensorrt_llm's own declarations (triton_backend/all_models/inflight_batcher_llm/tensorrt_llm/config.pbtxt, 1.2)."""


def load(repository, name):
    return text_format.Parse((repository / name / "config.pbtxt").read_text(), mc.ModelConfig())


@pytest.mark.parametrize("target", ["a10", "a800"])
def test_the_tensorrtllm_slot_declares_the_soft_token_and_lora_inputs_and_the_ensemble_feeds_them(
        target, qwen3_checkpoint, tmp_path):
    repository = render(target, tmp_path / "repo",
                        Checkpoints(str(qwen3_checkpoint), "/v", "/engines/e", postrank="/ckpt/pr"))
    assert check_repository(repository) == []
    slot = {i.name: (mc.DataType.Name(i.data_type), list(i.dims), i.optional) for i in
            load(repository, names.LLM_ENGINE).input}
    assert {k: v[:2] for k, v in slot.items() if k in SOFT} == SOFT and all(slot[k][2] for k in SOFT)
    for entry in (names.POSTRANK.entry, names.LIST_JUDGE.entry):  # Python entries calling the slot (wiring checks
        config = load(repository, entry)                           # the slot takes what they send, dtypes included)
        params = {k: v.string_value for k, v in config.parameters.items()}
        assert config.backend == "python" and params["rerank_engine"] == names.LLM_ENGINE
        assert params["llm_slot"] == "tensorrtllm"
    rerank = load(repository, names.RERANK.entry)  # other tasks send none of them: nothing unwired is fed
    into_slot = next(s for s in rerank.ensemble_scheduling.step if s.model_name == names.LLM_ENGINE)
    assert not set(SOFT) & set(into_slot.input_map)
    params = {k: v.string_value for k, v in load(repository, names.LLM_ENGINE).parameters.items()}
    assert params["lora_prefetch_dir"] == "/engines/lora"
    pipeline = (repository / names.PIPELINE_FILE).read_text()
    assert '[postrank]\ncheckpoint = "/ckpt/pr"' in pipeline


def test_without_a_post_ranker_nothing_is_prefetched(qwen3_checkpoint, tmp_path):
    repository = render("a10", tmp_path / "repo", Checkpoints(str(qwen3_checkpoint), "/v", "/engines/e"))
    params = {k: v.string_value for k, v in load(repository, names.LLM_ENGINE).parameters.items()}
    assert "lora_prefetch_dir" not in params


def adapter(tmp_path, targets=("q_proj", "k_proj", "v_proj", "o_proj"), rank=8):
    folder = tmp_path / "postrank"
    folder.mkdir(exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank,
                                                            "target_modules": list(targets)}))
    return folder


@pytest.mark.parametrize("target", ["a10", "a800"])
def test_the_engine_is_built_for_the_prompt_table_and_the_adapter(target, tmp_path):
    profile = Profile.load(target)
    plan = plan_engine(profile, QWEN3_4B)
    commands = build_commands(plan, profile, "/ckpt/q", tmp_path / "out", "/ex", postrank=str(adapter(tmp_path)),
                              soft_rows=51, lora_task_id=3)
    build = next(c for c in commands if c[0] == "trtllm-build")
    flag = lambda name: build[build.index(name) + 1]  # noqa: E731
    assert int(flag("--max_prompt_embedding_table_size")) == 51 * plan.max_batch_size
    assert flag("--lora_plugin") == "bfloat16" and flag("--max_lora_rank") == "8"
    at = build.index("--lora_target_modules")
    assert build[at + 1:at + 5] == ["attn_q", "attn_k", "attn_v", "attn_dense"]
    convert = commands[-1]
    assert convert[1] == "/ex/hf_lora_convert.py" and convert[convert.index("-o") + 1] == str(tmp_path / "out/lora/3")
    plain = build_commands(plan, profile, "/ckpt/q", tmp_path / "out", "/ex")
    assert not any("--lora_plugin" in c or "--max_prompt_embedding_table_size" in c for c in plain)


def test_an_adapter_the_plugin_cannot_target_is_refused_naming_the_field(tmp_path):
    profile = Profile.load("a10")
    with pytest.raises(BuildError, match="adapter_config.json: field target_modules has \\['lm_head'\\]"):
        build_commands(plan_engine(profile, QWEN3_4B), profile, "/c", tmp_path, "/ex",
                       postrank=str(adapter(tmp_path, ("q_proj", "lm_head"))), soft_rows=51)
