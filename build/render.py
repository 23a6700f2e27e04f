"""Render a deployable Triton model repository for a target (`cpu`, `a10`, `a800`).

Every config.pbtxt is generated as a Triton `ModelConfig` protobuf from the tensor specs in
ensemble/tensors.py and the target's profile (build/profiles/<target>.toml); the model.py files are
copied from model_repository/ unchanged, so pre/post/BLS code is the same in every target.

    python -m build.render --target cpu --out .cache/model_repository-cpu
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from ensemble import tensors as T
from ensemble.config import PipelineConfig
from ensemble.tensors import Interface, TensorSpec

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "model_repository"
PROFILES = Path(__file__).resolve().parent / "profiles"
TARGETS = ("cpu", "a10", "a800")

# Rendered model name -> (source folder, interface).
PLANNER, COVER, RERANKER, BLS = "query_planner", "cover_evaluator", "reranker", "rich_media_reranker"
LLM, VLM = "reranker_llm", "cover_vlm"
STEP_MODELS = {
    "planner_preprocess": ("planner_pre", T.PLANNER_PRE), "planner_postprocess": ("planner_post", T.PLANNER_POST),
    "cover_preprocess": ("cover_pre", T.COVER_PRE), "cover_postprocess": ("cover_post", T.COVER_POST),
    "reranker_preprocess": ("rerank_pre", T.RERANK_PRE), "reranker_postprocess": ("rerank_post", T.RERANK_POST),
}
PIPELINE_FILE = "pipeline.toml"


@dataclass(frozen=True)
class Profile:
    name: str
    data: dict[str, Any]

    @classmethod
    def load(cls, target: str) -> Profile:
        """A packaged target (cpu, a10, a800) or the path of a profile file a user copied and edited."""
        path = Path(target) if target.endswith(".toml") else PROFILES / f"{target}.toml"
        if not path.exists():
            raise SystemExit(f"unknown target {target!r}: choose one of {', '.join(TARGETS)} or give a profile .toml")
        with path.open("rb") as fh:
            return cls(path.stem, tomllib.load(fh))

    def get(self, section: str, key: str) -> Any:
        try:
            return self.data[section][key]
        except KeyError:
            raise SystemExit(f"profile {self.name}: [{section}] {key} is missing") from None

    @property
    def engine(self) -> str:
        return self.get("target", "engine")


@dataclass(frozen=True)
class Checkpoints:
    reranker: str
    vlm: str
    engine_dir: str = ""
    """TensorRT-LLM engine folder of the Qwen3 re-ranker (tensorrtllm targets)."""
    simulate: str = ""
    """Replace both torch engine slots by engines/simulated.py (``empty``, ``valid``, ``error``, ``garbage``,
    ``delay:MS``)."""
    simulate_vlm: str | None = None
    """Simulate only the VLM slot differently (None: same as `simulate`)."""


def _dims(spec: TensorSpec) -> list[int]:
    return list(spec.dims)


def _io(interface: Interface, *, ragged: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {
        "input": [mc.ModelInput(name=s.name, data_type=mc.DataType.Value(s.dtype), dims=_dims(s), optional=s.optional,
                                allow_ragged_batch=s.name in ragged) for s in interface.inputs],
        "output": [mc.ModelOutput(name=s.name, data_type=mc.DataType.Value(s.dtype), dims=_dims(s))
                   for s in interface.outputs],
    }


def _params(values: dict[str, str]) -> dict[str, mc.ModelParameter]:
    return {k: mc.ModelParameter(string_value=str(v)) for k, v in values.items()}


def _batching(profile: Profile, delay_us: int) -> mc.ModelDynamicBatching:
    return mc.ModelDynamicBatching(
        max_queue_delay_microseconds=delay_us,
        default_queue_policy=mc.ModelQueuePolicy(
            max_queue_size=profile.get("serving", "max_queue_size"),
            timeout_action=mc.ModelQueuePolicy.REJECT, allow_timeout_override=True))


def _python_model(name: str, interface: Interface, profile: Profile, params: dict[str, str], *, instances: int,
                  delay_us: int, ragged: frozenset[str] = frozenset()) -> mc.ModelConfig:
    return mc.ModelConfig(
        name=name, backend="python", max_batch_size=profile.get("serving", "max_batch_size"),
        dynamic_batching=_batching(profile, delay_us),
        instance_group=[mc.ModelInstanceGroup(count=instances, kind=mc.ModelInstanceGroup.KIND_CPU)],
        parameters=_params(params), **_io(interface, ragged=ragged))


def _ensemble(name: str, interface: Interface, profile: Profile,
              steps: list[tuple[str, Interface, dict[str, str], dict[str, str]]]) -> mc.ModelConfig:
    """`steps`: (model, its interface, input renames, output renames). With no output renames every output keeps
    its name; with renames only the renamed outputs are requested (Triton refuses unused ensemble tensors)."""
    scheduling = mc.ModelEnsembling()
    for model, step_io, inputs, outputs in steps:
        scheduling.step.append(mc.ModelEnsembling.Step(
            model_name=model, model_version=-1,
            input_map={s.name: inputs.get(s.name, s.name) for s in step_io.inputs},
            output_map={s.name: outputs.get(s.name, s.name) for s in step_io.outputs
                        if not outputs or s.name in outputs}))
    return mc.ModelConfig(name=name, platform="ensemble", max_batch_size=profile.get("serving", "max_batch_size"),
                          ensemble_scheduling=scheduling, **_io(interface))


def _engine_step(pre: str, slot: str, slot_io: Interface, post: str, post_io: Interface, ens_inputs: set[str]
                 ) -> list[tuple[str, Interface, dict[str, str], dict[str, str]]]:
    """pre -> slot -> post. Tensors between steps get a leading underscore so they never clash with the
    ensemble's own inputs and outputs; the post step also reads what the pre step passes it."""
    pre_io = STEP_MODELS[pre][1]
    internal = {s.name: f"_{s.name}" for s in pre_io.outputs} | {s.name: f"_{s.name}" for s in slot_io.outputs}
    consumed = {s.name for s in slot_io.inputs} | {s.name for s in post_io.inputs}
    slot_inputs = {s.name: (s.name if s.name in ens_inputs else internal[s.name]) for s in slot_io.inputs}
    post_inputs = {s.name: (s.name if s.name in ens_inputs else internal[s.name]) for s in post_io.inputs}
    # Pre outputs no later step reads (say, guided decoding for a PyTorch slot) are simply not requested.
    return [(pre, pre_io, {}, {s.name: internal[s.name] for s in pre_io.outputs if s.name in consumed}),
            (slot, slot_io, slot_inputs, {s.name: internal[s.name] for s in slot_io.outputs}),
            (post, post_io, post_inputs, {})]


def _slot_configs(profile: Profile, ckpts: Checkpoints) -> dict[str, mc.ModelConfig]:
    serving = lambda key: profile.get("serving", key)  # noqa: E731
    target = profile.data["target"]
    ragged = frozenset({"input_ids", "stop_words_list"})

    def slot_params(checkpoint: str, vision: bool, simulate: str) -> dict[str, str]:
        params = {"checkpoint_dir": checkpoint, "vision": "true" if vision else "false", "device": target["device"],
                  "dtype": target["dtype"], "max_new_tokens_cap": serving("max_new_tokens_cap")}
        return params | ({"simulate": simulate} if profile.engine == "torch" else {})

    if profile.engine == "torch":
        llm = _python_model(LLM, T.TORCH_LLM_SLOT, profile, slot_params(ckpts.reranker, False, ckpts.simulate),
                            instances=serving("llm_instances"), delay_us=serving("engine_queue_delay_us"), ragged=ragged)
    else:
        from build.trtllm_repository import tensorrtllm_config

        llm = tensorrtllm_config(LLM, profile, ckpts)
    vlm_params = slot_params(ckpts.vlm, True, ckpts.simulate if ckpts.simulate_vlm is None else ckpts.simulate_vlm)
    if profile.engine != "torch":
        memory, gpu = profile.data["memory"], profile.data["gpu"]
        vlm_params |= {"kv_cache_gib": memory["vlm_kv_gib"],
                       "gpu_device_id": "0" if memory["vlm_on_this_gpu"] or gpu["gpus_per_server"] < 2 else "1"}
    vlm = _python_model(VLM, T.VLM_SLOT, profile, vlm_params, instances=serving("vlm_instances"),
                        delay_us=serving("engine_queue_delay_us"), ragged=ragged)
    return {LLM: llm, VLM: vlm}


def model_configs(profile: Profile, ckpts: Checkpoints) -> dict[str, mc.ModelConfig]:
    """Every model of the repository, by name."""
    serving = lambda key: profile.get("serving", key)  # noqa: E731
    common = {"pipeline_config": f"../{PIPELINE_FILE}"}
    configs: dict[str, mc.ModelConfig] = {}
    for name, (step, interface) in STEP_MODELS.items():
        tokenizer = ckpts.vlm if step.startswith("cover") else ckpts.reranker
        configs[name] = _python_model(name, interface, profile, common | {"step": step, "tokenizer_dir": tokenizer},
                                      instances=serving("step_instances"), delay_us=serving("step_queue_delay_us"))
    configs.update(_slot_configs(profile, ckpts))
    llm_io = T.llm_slot(profile.engine)
    configs[PLANNER] = _ensemble(PLANNER, T.QUERY_PLANNER, profile, _engine_step(
        "planner_preprocess", LLM, llm_io, "planner_postprocess", T.PLANNER_POST, {"query", "session"}))
    configs[COVER] = _ensemble(COVER, T.COVER_EVALUATOR, profile, _engine_step(
        "cover_preprocess", VLM, T.VLM_SLOT, "cover_postprocess", T.COVER_POST, {"query", "image", "task"}))
    configs[RERANKER] = _ensemble(RERANKER, T.RERANKER, profile, _engine_step(
        "reranker_preprocess", LLM, llm_io, "reranker_postprocess", T.RERANK_POST, {"request"}))
    configs[BLS] = _python_model(BLS, T.RICH_MEDIA_RERANKER, profile,
                                 common | {"sub_calls": serving("bls_sub_calls"),
                                           "waits_in_place": "true" if serving("bls_waits_in_place") else "false",
                                           "cover_engine": VLM, "rerank_engine": LLM, "llm_slot": profile.engine,
                                           "cover_tokenizer_dir": ckpts.vlm, "rerank_tokenizer_dir": ckpts.reranker,
                                           "cover_model": COVER, "rerank_model": RERANKER,
                                           "cover_batch_size": serving("max_batch_size")},
                                 instances=serving("bls_instances"), delay_us=serving("step_queue_delay_us"))
    return configs


def _source_folder(name: str, profile: Profile) -> str | None:
    if name in STEP_MODELS:
        return "step"
    if name == LLM:
        return "torch_engine" if profile.engine == "torch" else None  # the tensorrtllm backend has no model.py
    if name == VLM:
        return "torch_engine" if profile.engine == "torch" else "trtllm_vlm"
    if name == BLS:
        return "rich_media_reranker"
    return None  # ensembles and the tensorrtllm backend have no model.py


def pipeline_overrides(profile: Profile) -> dict[str, Any]:
    return profile.data.get("pipeline", {})


def render(target: str, out: str | Path, ckpts: Checkpoints, *, overrides: dict[str, Any] | None = None) -> Path:
    """`overrides`: merged into the profile, e.g. ``{"serving": {"max_queue_size": 4}}`` (benchmarks use this)."""
    profile = Profile.load(target)
    if overrides:
        from ensemble.config import _merged

        profile = Profile(profile.name, _merged(profile.data, overrides))
    out = Path(out)
    configs = model_configs(profile, ckpts)
    PipelineConfig.load(overrides=pipeline_overrides(profile))  # fail here, not at model load
    staging = out.with_name(out.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, config in configs.items():
        folder = staging / name
        (folder / "1").mkdir(parents=True)
        (folder / "config.pbtxt").write_text(text_format.MessageToString(config, as_utf8=True))
        source = _source_folder(name, profile)
        if source:
            shutil.copy2(SOURCES / source / "1" / "model.py", folder / "1" / "model.py")
    (staging / PIPELINE_FILE).write_text(_to_toml(pipeline_overrides(profile)))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="cpu", help=f"{', '.join(TARGETS)} or a profile .toml")
    parser.add_argument("--out", required=True)
    parser.add_argument("--reranker-ckpt", default=os.environ.get("RERANKER_CKPT", ""),
                        help="Hugging Face folder of the Qwen3 re-ranker (tokenizer, and weights on torch targets)")
    parser.add_argument("--vlm-ckpt", default=os.environ.get("VLM_CKPT", ""),
                        help="Hugging Face folder of the Qwen2.5-VL evaluator")
    parser.add_argument("--engine-dir", default=os.environ.get("RERANKER_ENGINE", ""),
                        help="TensorRT-LLM engine folder of the re-ranker (a10 / a800)")
    parser.add_argument("--cache", default=".cache", help="where tiny checkpoints are built when none are given")
    args = parser.parse_args()
    ckpts = resolve_checkpoints(args.reranker_ckpt, args.vlm_ckpt, args.engine_dir, args.cache)
    print(render(args.target, args.out, ckpts))


def resolve_checkpoints(reranker: str, vlm: str, engine_dir: str, cache: str) -> Checkpoints:
    """Absolute checkpoint paths; the tiny ones (built on demand) stand in for any not given."""
    if not reranker or not vlm:
        from build.tiny_checkpoints import ensure_tiny_checkpoints

        tiny = ensure_tiny_checkpoints(Path(cache) / "checkpoints")
        reranker = reranker or str(tiny.reranker)
        vlm = vlm or str(tiny.vlm)
    for label, path in (("reranker checkpoint", reranker), ("VLM checkpoint", vlm)):
        if not Path(path).is_dir():
            raise SystemExit(f"{label} folder not found: {path}")
    return Checkpoints(str(Path(reranker).resolve()), str(Path(vlm).resolve()),
                       str(Path(engine_dir).resolve()) if engine_dir else "")


if __name__ == "__main__":
    main()
