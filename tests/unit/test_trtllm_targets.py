"""GPU targets, checked without a GPU: rendering, wiring, backend parameters, engine plans, fail-fast builds."""

import shutil

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from build.engine import QWEN3_4B, ModelShape, main as engine_main, plan_engine
from build.memory import allocated_gib, kv_fraction
from engines.stack import TRITON_IMAGE
from ensemble import names
from build.profile import Checkpoints, Profile
from build.render import render
from build.trtllm_repository import BACKEND_PARAMETER_KEYS, BACKEND_REQUIRED_KEYS, PARAMETER_KEYS
from build.wiring import check_repository


@pytest.fixture(scope="module", params=["a10", "a800"])
def gpu_repository(request, tmp_path_factory, qwen3_checkpoint):
    ckpts = Checkpoints(str(qwen3_checkpoint), "/ckpt/qwen2.5-vl-7b", "/engines/reranker", postrank="/ckpt/postrank")
    return request.param, render(request.param, tmp_path_factory.mktemp(request.param) / "repo", ckpts)


def load(repository, name):
    return text_format.Parse((repository / name / "config.pbtxt").read_text(), mc.ModelConfig())


def test_gpu_repository_wiring(gpu_repository):
    _, repository = gpu_repository
    assert check_repository(repository) == []


def test_every_batching_model_of_the_gpu_targets_lets_triton_prefetch(gpu_repository):
    from tests.unit.test_render import lets_triton_prefetch

    _, repository = gpu_repository
    configs = [load(repository, folder.name) for folder in sorted(repository.iterdir())
               if (folder / "config.pbtxt").exists()]
    batching = [c for c in configs if c.HasField("dynamic_batching")]
    assert {"reranker_llm", "cover_vlm", "rich_media_reranker"} <= {c.name for c in batching}
    assert [c.name for c in batching if not lets_triton_prefetch(c)] == []


def test_reranker_slot_is_the_tensorrtllm_backend(gpu_repository):
    _, repository = gpu_repository
    config = load(repository, "reranker_llm")
    assert config.backend == "tensorrtllm" and not (repository / "reranker_llm" / "1" / "model.py").exists()
    assert config.model_transaction_policy.decoupled is False
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert set(params) == PARAMETER_KEYS
    assert params["gpt_model_path"] == "/engines/reranker"
    assert params["lora_prefetch_dir"] == "/engines/lora"  # python -m build.engine --postrank writes lora/<task id>
    assert params["gpt_model_type"] == "inflight_fused_batching"
    assert params["enable_kv_cache_reuse"] == params["enable_chunked_context"] == "true"
    assert params["exclude_input_in_output"] == "true"
    assert 0 < float(params["kv_cache_free_gpu_mem_fraction"]) < 1 and int(params["max_tokens_in_paged_kv_cache"]) > 0


def test_rendered_parameters_are_keys_the_backend_reads():
    assert PARAMETER_KEYS <= BACKEND_PARAMETER_KEYS
    assert BACKEND_REQUIRED_KEYS <= PARAMETER_KEYS


def test_vlm_slot_is_the_llm_api_model_and_steps_are_unchanged(gpu_repository, tmp_path):
    target, repository = gpu_repository
    source = (repository / "cover_vlm" / "1" / "model.py").read_text()
    assert "TensorRTLLMVisionEngine" in source
    cpu = render("cpu", tmp_path / "cpu", Checkpoints("/c/q", "/c/v"))
    for step in ("reranker_preprocess", "planner_postprocess", "rich_media_reranker"):
        assert (repository / step / "1" / "model.py").read_text() == (cpu / step / "1" / "model.py").read_text()


def test_qwen3_4b_shape_from_config(qwen3_checkpoint):
    shape = ModelShape.from_checkpoint(qwen3_checkpoint)
    assert shape == QWEN3_4B
    assert 4.0e9 < shape.parameters < 4.1e9  # Qwen3-4B: 4.02 B parameters
    assert shape.kv_bytes_per_token() == 2 * 36 * 8 * 128 * 2  # 144 KiB per token in BF16


@pytest.mark.parametrize("target", ["a10", "a800"])
def test_engine_plan_fits_the_workload_and_memory(target):
    profile = Profile.load(target)
    plan = plan_engine(profile, QWEN3_4B)
    w = profile.data["workload"]
    assert plan.max_input_len % 256 == 0 and plan.max_seq_len % 256 == 0
    assert plan.max_input_len >= w["instruction_tokens"] + w["candidates"] * (
        w["field_tokens_per_candidate"] + w["content_tokens_per_candidate"])
    assert plan.max_input_len >= w["instruction_tokens"] + w["max_candidates"] * w["field_tokens_per_candidate"]
    assert plan.max_seq_len >= plan.max_input_len + w["thinking_budget"] + w["answer_tokens"]
    used = -sum(v for k, v in plan.memory_rows if v < 0 and k != "GPU memory usable")
    assert used + plan.kv_cache_gib == pytest.approx(profile.data["gpu"]["memory_gib"], abs=0.05)
    assert plan.max_batch_size == plan.kv_cache_tokens // plan.typical_request_tokens
    rerank = profile.data["pipeline"]["generation"]["rerank"]
    assert rerank["max_input_len"] <= plan.max_input_len
    assert rerank["max_input_len"] + rerank["max_new_tokens"] <= plan.max_seq_len


def test_engine_dry_run_prints_exact_commands(qwen3_checkpoint, tmp_path, capsys):
    assert engine_main(["--profile", "a800", "--checkpoint", str(qwen3_checkpoint), "--out", str(tmp_path),
                        "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "examples/models/core/qwen/convert_checkpoint.py --model_dir" in out and "--dtype bfloat16" in out
    for flag in ("--use_paged_context_fmha enable", "--multiple_profiles enable", "--gemm_plugin bfloat16",
                 "--kv_cache_type paged", "--max_num_tokens 8192"):
        assert flag in out
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(shutil.which("trtllm-build") is not None, reason="this machine can build engines")
def test_engine_real_build_fails_fast_without_tensorrt_llm(qwen3_checkpoint, tmp_path, capsys):
    code = engine_main(["--profile", "a10", "--checkpoint", str(qwen3_checkpoint), "--out", str(tmp_path / "e")])
    assert code == 3
    err = capsys.readouterr().err
    assert "needs TensorRT-LLM 1.2.1" in err and "not installed" in err and TRITON_IMAGE in err
    assert not (tmp_path / "e").exists()


def test_custom_profile_file_renders(tmp_path, qwen3_checkpoint):
    from pathlib import Path

    text = Path("build/profiles/a10.toml").read_text().replace("gpus_per_server = 1", "gpus_per_server = 2").replace(
        "vlm_on_this_gpu = true", "vlm_on_this_gpu = false")
    profile_path = tmp_path / "a10x2.toml"
    profile_path.write_text(text)
    repository = render(str(profile_path), tmp_path / "repo", Checkpoints(str(qwen3_checkpoint), "/v", "/e"))
    vlm = load(repository, "cover_vlm")
    assert vlm.parameters["gpu_device_id"].string_value == "1"
    assert check_repository(repository) == []
    plan_single = plan_engine(Profile.load("a10"), QWEN3_4B)
    plan_double = plan_engine(Profile.load(str(profile_path)), QWEN3_4B)
    assert plan_double.kv_cache_gib > plan_single.kv_cache_gib


def test_vlm_slot_fails_at_load_naming_tensorrt_llm():
    from engines.trtllm_vlm import TensorRTLLMUnavailable, import_tensorrt_llm

    if shutil.which("trtllm-build"):
        pytest.skip("TensorRT-LLM is installed here")
    with pytest.raises(TensorRTLLMUnavailable, match=r"TensorRT-LLM 1\.2\.1 .*tensorrt_llm.*26\.07-trtllm-python-py3"):
        import_tensorrt_llm()


def test_gpu_target_without_engine_folder_is_refused(tmp_path, qwen3_checkpoint):
    with pytest.raises(SystemExit, match="--engine-dir"):
        render("a10", tmp_path / "repo", Checkpoints(str(qwen3_checkpoint), "/v"))
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("target", ["a10", "a800"])
def test_each_model_gets_its_kv_budget_whichever_triton_loads_first(target):
    """The runtimes take min(token cap, fraction x free memory). Loading second, a model finds free only its
    budget and the unallocated half of the reserve; loading first, nearly the whole card (the cap binds)."""
    profile = Profile.load(target)
    m, total = profile.data["memory"], profile.data["gpu"]["memory_gib"]
    plan = plan_engine(profile, QWEN3_4B)
    rerank_cap = plan.kv_cache_tokens * QWEN3_4B.kv_bytes_per_token() / 1024 ** 3
    vlm_fraction = kv_fraction(m["vlm_kv_gib"], m["reserve_gib"])
    allocated_before_kv = m["reserve_gib"] / 2
    rerank_load = plan.weights_gib + m["activations_gib"]
    for first in ("reranker", "vlm"):
        used = allocated_before_kv
        got = {}
        for model in ((first, "vlm") if first == "reranker" else (first, "reranker")):
            if model == "reranker":
                used += rerank_load
                got[model] = allocated_gib(rerank_cap, plan.kv_cache_free_gpu_mem_fraction, total - used)
            else:
                used += m["vlm_weights_gib"]
                got[model] = allocated_gib(m["vlm_kv_gib"], vlm_fraction, total - used)
            used += got[model]
        assert got["reranker"] >= 0.99 * rerank_cap, (first, got)
        assert got["vlm"] >= 0.99 * m["vlm_kv_gib"], (first, got)
        assert used <= total
    # The fraction rendered before this plan (the re-ranker's budget over the memory free with it alone)
    # starved the re-ranker whenever the VLM loaded first.
    old = plan.kv_cache_gib / (total - plan.weights_gib - m["activations_gib"] - m["reserve_gib"])
    vlm_first_free = total - allocated_before_kv - m["vlm_weights_gib"] - m["vlm_kv_gib"] - rerank_load
    if target == "a10":
        assert allocated_gib(rerank_cap, old, vlm_first_free) < 0.5 * rerank_cap


def test_the_vlm_slot_is_rendered_with_its_kv_fraction(gpu_repository):
    target, repository = gpu_repository
    m = Profile.load(target).data["memory"]
    params = {k: v.string_value for k, v in load(repository, "cover_vlm").parameters.items()}
    assert float(params["kv_cache_fraction"]) == kv_fraction(m["vlm_kv_gib"], m["reserve_gib"])
    assert float(params["kv_cache_gib"]) == m["vlm_kv_gib"]


def test_ensembles_over_the_tensorrtllm_slot_take_one_request_per_call(gpu_repository, tmp_path):
    """The C++ backend refuses a request holding a batch unless decoupled; Triton refuses it at the door."""
    target, repository = gpu_repository
    cpu = render("cpu", tmp_path / "cpu", Checkpoints("/c/q", "/c/v"))
    for entry in (names.RERANK.entry, names.PLANNER.entry):
        assert load(repository, entry).max_batch_size == 1
        assert load(cpu, entry).max_batch_size > 1
        assert load(repository, entry).input[0].dims == load(cpu, entry).input[0].dims
    assert load(repository, "reranker_llm").max_batch_size > 1  # requests from many clients still batch in flight
    assert load(repository, names.COVER.entry).max_batch_size == Profile.load(target).get("serving", "max_batch_size")


def test_the_pointwise_entry_knows_the_text_slot_takes_one_pair_per_request(gpu_repository):
    """It sends the C++ slot one request per pair (ensemble/pointwise/grader.py) and no more rows a request than
    the slots' max_batch_size."""
    from ensemble.names import POINTWISE, EngineKind, Param

    target, repository = gpu_repository
    config = load(repository, POINTWISE.entry)
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params[Param.LLM_ENGINE_KIND] == EngineKind.TENSORRTLLM.value
    assert int(params[Param.ENGINE_BATCH_SIZE]) == config.max_batch_size > 1
    assert not (repository / POINTWISE.pre).exists()  # it runs its steps itself
