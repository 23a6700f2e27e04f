"""Render a deployable Triton model repository for a target (`cpu`, `a10`, `a800`).

Every config.pbtxt is generated as a Triton `ModelConfig` protobuf from the tasks' tensor specs
(ensemble/tasks.py) and the target's profile (build/profiles/<target>.toml); the model.py files are copied
from model_repository/ unchanged, so pre/post/BLS code is the same in every target.

    python -m build.render --target cpu --out .cache/model_repository-cpu
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from build import pbtxt
from build.memory import kv_fraction
from build.profile import TARGETS, Checkpoints, Profile, resolve_checkpoints
from ensemble import names
from ensemble import tensors as T
from ensemble.config import PipelineConfig, merged
from ensemble.names import EngineKind, Param
from ensemble.tasks import TASKS

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "model_repository"
RAGGED = frozenset({"input_ids", "stop_words_list", "prompt_embedding_table", "prompt_table_extra_ids"})


def step_models() -> dict[str, tuple[str, T.Interface]]:
    """Step model name -> (the engine slot its task runs on, the step's tensors). A task whose entry is a Python
    model runs its steps in that model (and in the BLS): nothing would call its step models, and each is a Python
    process of its own (some 500 MB with torch), so they are not rendered."""
    return {model: (task.engine, step.interface) for task in TASKS if not task.entry_source
            for model, step in task.step_classes().items()}


def _slot_configs(profile: Profile, ckpts: Checkpoints) -> dict[str, mc.ModelConfig]:
    serving = lambda key: profile.get("serving", key)  # noqa: E731
    target = profile.data["target"]
    torch = profile.engine is EngineKind.TORCH

    def slot_params(checkpoint: str, vision: bool, simulate: str) -> dict[str, str]:
        values = {Param.CHECKPOINT_DIR: checkpoint, Param.VISION: "true" if vision else "false",
                  Param.DEVICE: target["device"], Param.DTYPE: target["dtype"],
                  Param.PIPELINE_CONFIG: f"../{names.PIPELINE_FILE}"}
        return values | ({Param.SIMULATE: simulate, Param.WEIGHTS: target["weights"]} if torch else {})

    if torch:
        adapters = {Param.LORA_ADAPTERS: json.dumps({str(_postrank_task(profile)): ckpts.postrank})} \
            if ckpts.postrank else {}
        llm = pbtxt.python_model(names.LLM_ENGINE, T.TORCH_LLM_SLOT, profile,
                                 slot_params(ckpts.reranker, False, ckpts.simulate) | adapters,
                                 instances=serving("llm_instances"), delay_us=serving("engine_queue_delay_us"),
                                 ragged=RAGGED)
    else:
        from build.trtllm_repository import tensorrtllm_config

        llm = tensorrtllm_config(names.LLM_ENGINE, profile, ckpts)
    vlm_params = slot_params(ckpts.vlm, True, ckpts.simulate if ckpts.simulate_vlm is None else ckpts.simulate_vlm)
    if not torch:
        memory, gpu = profile.data["memory"], profile.data["gpu"]
        vlm_params |= {Param.KV_CACHE_GIB: memory["vlm_kv_gib"],
                       Param.KV_CACHE_FRACTION: kv_fraction(memory["vlm_kv_gib"], memory["reserve_gib"]),
                       Param.GPU_DEVICE_ID: "0" if memory["vlm_on_this_gpu"] or gpu["gpus_per_server"] < 2 else "1"}
    vlm = pbtxt.python_model(names.VLM_ENGINE, T.VLM_SLOT, profile, vlm_params, instances=serving("vlm_instances"),
                             delay_us=serving("engine_queue_delay_us"), ragged=RAGGED)
    return {names.LLM_ENGINE: llm, names.VLM_ENGINE: vlm}


def model_configs(profile: Profile, ckpts: Checkpoints) -> dict[str, mc.ModelConfig]:
    """Every model of the repository, by name."""
    serving = lambda key: profile.get("serving", key)  # noqa: E731
    common = {Param.PIPELINE_CONFIG: f"../{names.PIPELINE_FILE}", Param.PROFILE: profile.name}
    tokenizer = {names.LLM_ENGINE: ckpts.reranker, names.VLM_ENGINE: ckpts.vlm}
    slot_io = {names.LLM_ENGINE: T.llm_slot(profile.engine), names.VLM_ENGINE: T.VLM_SLOT}
    configs: dict[str, mc.ModelConfig] = {}
    for model, (engine, interface) in step_models().items():
        configs[model] = pbtxt.python_model(
            model, interface, profile, common | {Param.STEP: model, Param.TOKENIZER_DIR: tokenizer[engine]},
            instances=serving("step_instances"), delay_us=serving("step_queue_delay_us"))
    configs.update(_slot_configs(profile, ckpts))
    for task in TASKS:
        if task.entry_source:  # a Python entry may call either slot (the pointwise grader does)
            entry = {Param.COVER_TOKENIZER_DIR: ckpts.vlm, Param.COVER_ENGINE: names.VLM_ENGINE,
                     Param.RERANK_TOKENIZER_DIR: ckpts.reranker, Param.RERANK_ENGINE: names.LLM_ENGINE,
                     Param.LLM_ENGINE_KIND: profile.engine.value, Param.ENGINE_BATCH_SIZE: serving("max_batch_size")}
            configs[task.models.entry] = pbtxt.python_model(
                task.models.entry, task.entry, profile, common | entry, instances=serving("step_instances"),
                delay_us=serving("step_queue_delay_us"))
            continue
        steps = pbtxt.engine_steps((task.models.pre, task.pre.interface), (task.engine, slot_io[task.engine]),
                                   (task.models.post, task.post.interface), {s.name for s in task.entry.inputs})
        configs[task.models.entry] = pbtxt.ensemble(task.models.entry, task.entry, profile, steps,
                                                    max_batch_size=_ensemble_batch(task.engine, profile))
    bls = {Param.SUB_CALLS: serving("bls_sub_calls"),
           Param.WAITS_IN_PLACE: "true" if serving("bls_waits_in_place") else "false",
           Param.COVER_ENGINE: names.VLM_ENGINE, Param.RERANK_ENGINE: names.LLM_ENGINE,
           Param.LLM_ENGINE_KIND: profile.engine.value,
           Param.COVER_TOKENIZER_DIR: ckpts.vlm, Param.RERANK_TOKENIZER_DIR: ckpts.reranker,
           Param.COVER_MODEL: names.COVER.entry, Param.RERANK_MODEL: names.RERANK.entry,
           Param.POINTWISE_MODEL: names.POINTWISE.entry, Param.POSTRANK_MODEL: names.POSTRANK.entry,
           Param.ENGINE_BATCH_SIZE: serving("max_batch_size")}
    configs[names.RICH_MEDIA_RERANKER] = pbtxt.python_model(
        names.RICH_MEDIA_RERANKER, T.RICH_MEDIA_RERANKER, profile, common | bls,
        instances=serving("bls_instances"), delay_us=serving("step_queue_delay_us"))
    return configs


ONE_REQUEST_PER_CALL = 1
"""The `tensorrtllm` backend answers one sequence per request unless decoupled: a request whose tensors hold a
batch of several fails in the engine slot ("Batch size > 1 requires the tensorrt_llm backend to be using
decoupled transaction policy", createRequestsFromInputTensors in the backend's utils.cc), and a decoupled slot
cannot sit in a static ensemble. Ensembles over it take batch 1, so Triton refuses a larger one up front and
names the limit. Requests from many clients are still batched: in flight, by the backend."""


def _ensemble_batch(engine: str, profile: Profile) -> int | None:
    """An ensemble's max_batch_size: 1 over the C++ backend's slot, else the profile's (None)."""
    return ONE_REQUEST_PER_CALL if engine == names.LLM_ENGINE and profile.engine is EngineKind.TENSORRTLLM else None


def _source_folder(name: str, profile: Profile) -> str | None:
    """The model_repository/ folder whose model.py a model runs; None for ensembles and the C++ backend."""
    torch = profile.engine is EngineKind.TORCH
    if name in step_models():
        return "step"
    if name == names.LLM_ENGINE:
        return "torch_engine" if torch else None
    if name == names.VLM_ENGINE:
        return "torch_engine" if torch else "trtllm_vlm"
    if name == names.RICH_MEDIA_RERANKER:
        return names.RICH_MEDIA_RERANKER  # its folder bears its name
    return next((t.entry_source for t in TASKS if t.models.entry == name and t.entry_source), None)


def pipeline_overrides(profile: Profile, ckpts: Checkpoints | None = None) -> dict[str, Any]:
    """The profile's [pipeline] table, with the post-ranker folder where there is one."""
    overrides = profile.data.get("pipeline", {})
    if ckpts is not None and ckpts.postrank:
        overrides = merged(overrides, {"postrank": {"checkpoint": ckpts.postrank}})
    return overrides


def _postrank_task(profile: Profile) -> int:
    return PipelineConfig.load(overrides=pipeline_overrides(profile)).postrank.lora_task_id


def render(target: str, out: str | Path, ckpts: Checkpoints, *, overrides: dict[str, Any] | None = None) -> Path:
    """`overrides`: merged into the profile, e.g. ``{"serving": {"max_queue_size": 4}}`` (benchmarks use this)."""
    profile = Profile.load(target)
    if overrides:
        profile = profile.merged(overrides)
    out = Path(out)
    configs = model_configs(profile, ckpts)
    config = PipelineConfig.load(overrides=pipeline_overrides(profile, ckpts))  # fail here, not at model load
    for task in TASKS:
        config.generation_for(task.name)
    staging = out.with_name(out.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, model in configs.items():
        folder = staging / name
        (folder / "1").mkdir(parents=True)
        (folder / "config.pbtxt").write_text(text_format.MessageToString(model, as_utf8=True))
        source = _source_folder(name, profile)
        if source:
            shutil.copy2(SOURCES / source / "1" / "model.py", folder / "1" / "model.py")
    (staging / names.PIPELINE_FILE).write_text(_to_toml(pipeline_overrides(profile, ckpts)))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out


def _to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Enough TOML for nested tables of scalars (the pipeline overrides)."""
    scalars = [f"{k} = {json.dumps(v)}" for k, v in data.items() if not isinstance(v, dict)]
    text = (f"[{prefix}]\n" if prefix and scalars else "") + "".join(line + "\n" for line in scalars)
    for key, value in data.items():
        if isinstance(value, dict):
            text += _to_toml(value, f"{prefix}.{key}" if prefix else key)
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="cpu", help=f"{', '.join(TARGETS)} or a profile .toml")
    parser.add_argument("--out", required=True)
    parser.add_argument("--reranker-ckpt", default=os.environ.get("RERANKER_CKPT", ""),
                        help="Hugging Face folder of the Qwen3 re-ranker (tokenizer, and weights on torch targets)")
    parser.add_argument("--vlm-ckpt", default=os.environ.get("VLM_CKPT", ""),
                        help="Hugging Face folder of the Qwen2.5-VL evaluator")
    parser.add_argument("--engine-dir", default=os.environ.get("RERANKER_ENGINE", ""),
                        help="TensorRT-LLM engine folder of the re-ranker (a10 / a800)")
    parser.add_argument("--postrank-ckpt", default=os.environ.get("POSTRANK_CKPT", ""),
                        help="post-ranker folder (LoRA adapter, feature encoder, feature schema) on the re-ranker")
    parser.add_argument("--cache", default=".cache", help="where tiny checkpoints are built when none are given")


def run(args: argparse.Namespace) -> int:
    ckpts = resolve_checkpoints(args.reranker_ckpt, args.vlm_ckpt, args.engine_dir, args.cache, args.postrank_ckpt)
    print(render(args.target, args.out, ckpts))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
