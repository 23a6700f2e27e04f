"""Build the Qwen3 re-ranker (and planner) TensorRT-LLM 1.2.1 engine for a GPU profile.

Engine limits come from the workload and the memory plan, not from guesses:
- max_input_len = instruction prefix + candidates x (fields + content budget), rounded up to 256,
  and at least what `max_candidates` needs with every content cut to nothing;
- max_seq_len = max_input_len + thinking budget + answer, rounded up to 256;
- KV-cache budget = GPU memory - weights - activations - reserve - what the VLM takes on the same GPU;
- max_batch_size (when the profile says 0) = KV-cache tokens / tokens of one typical request, because the
  default `guaranteed_no_evict` scheduler reserves a request's whole sequence when it admits it.

    python -m build.engine --profile a10 --checkpoint /ckpt/qwen3-4b-reranker --out /engines/a10 --dry-run
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from build.memory import kv_fraction
from build.model_shape import QWEN3_4B, BuildError, ModelShape
from build.profile import Profile
from engines.stack import stack_problem
from ensemble.config import ConfigError, PipelineConfig
from ensemble.postrank.checkpoint import read_adapter_config
from ensemble.names import EngineKind

CONVERT_SCRIPT = "models/core/qwen/convert_checkpoint.py"
TOKENIZER_INFO_SCRIPT = "generate_xgrammar_tokenizer_info.py"
TOKENIZER_INFO = "xgrammar_tokenizer_info.json"
"""Written beside engine/; the tensorrtllm backend's xgrammar guided decoding reads it."""
LORA_CONVERT_SCRIPT = "hf_lora_convert.py"
"""examples/hf_lora_convert.py: a PEFT adapter -> model.lora_weights.npy + model.lora_config.npy, the layout the
backend's `lora_prefetch_dir` loads (tensorrtllm_backend docs/lora.md)."""
LORA_PREFETCH = "lora"
"""Written beside engine/: one folder per LoRA task id (the post-ranker's is [postrank] lora_task_id)."""
TRTLLM_LORA_MODULES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_dense",
                       "gate_proj": "mlp_h_to_4h", "down_proj": "mlp_4h_to_h", "up_proj": "mlp_gate"}
"""PEFT's module names -> TensorRT-LLM's (tensorrt_llm/lora_helper.py, get_default_trtllm_modules_to_hf_modules)."""
GIB = 1024 ** 3
MAX_DERIVED_BATCH = 512
"""Upper bound of a derived max_batch_size (the TensorRT-LLM tuning guide's case study peaked at 512)."""


@dataclass(frozen=True)
class EnginePlan:
    max_input_len: int
    max_seq_len: int
    max_batch_size: int
    max_num_tokens: int
    typical_request_tokens: int
    weights_gib: float
    kv_cache_gib: float
    kv_cache_tokens: int
    kv_cache_free_gpu_mem_fraction: float
    """Of the memory free when the cache is sized: enough for the budget when the engine loads last; when it
    loads first, `kv_cache_tokens` binds (build/memory.py)."""
    memory_rows: tuple[tuple[str, float], ...]


def _round_up(value: int, step: int = 256) -> int:
    return int(math.ceil(value / step) * step)


def plan_engine(profile: Profile, shape: ModelShape) -> EnginePlan:
    w, m, g, e = (profile.data[k] for k in ("workload", "memory", "gpu", "engine"))
    per_candidate = w["field_tokens_per_candidate"] + w["content_tokens_per_candidate"]
    max_input_len = _round_up(max(w["instruction_tokens"] + w["candidates"] * per_candidate,
                                  w["instruction_tokens"] + w["max_candidates"] * w["field_tokens_per_candidate"]))
    output_tokens = w["thinking_budget"] + w["answer_tokens"]
    max_seq_len = _round_up(max_input_len + output_tokens)
    weights_gib = m["reranker_weights_gib"] or shape.parameters * 2 / GIB
    vlm_gib = (m["vlm_weights_gib"] + m["vlm_kv_gib"]) if m["vlm_on_this_gpu"] else 0.0
    rows = [("GPU memory usable", g["memory_gib"]), ("re-ranker weights (BF16)", -weights_gib),
            ("runtime activations", -m["activations_gib"]), ("CUDA context, Triton, fragmentation", -m["reserve_gib"])]
    if vlm_gib:
        rows += [("VLM weights (same GPU)", -m["vlm_weights_gib"]), ("VLM KV cache", -m["vlm_kv_gib"])]
    kv_gib = sum(value for _, value in rows)
    if kv_gib <= 0.5:
        raise BuildError(f"profile {profile.name}: only {kv_gib:.1f} GiB left for the KV cache; move the VLM to "
                         "another GPU, quantize it, or lower activations")
    rows.append(("re-ranker KV cache", kv_gib))
    kv_tokens = int(kv_gib * GIB // shape.kv_bytes_per_token())
    typical = w["instruction_tokens"] + w["candidates"] * per_candidate + output_tokens
    batch = e["max_batch_size"] or min(MAX_DERIVED_BATCH, max(1, kv_tokens // typical))
    return EnginePlan(max_input_len, max_seq_len, int(batch), e["max_num_tokens"], typical, round(weights_gib, 2),
                      round(kv_gib, 2), kv_tokens, kv_fraction(kv_gib, m["reserve_gib"]),
                      tuple((k, round(v, 2)) for k, v in rows))


def postrank_flags(plan: EnginePlan, postrank: str, soft_rows: int) -> list[str]:
    """trtllm-build flags for the post-ranker: a prompt table of `soft_rows` per sequence for the whole batch
    (max_prompt_embedding_table_size = rows per request x max_batch_size, as TensorRT-LLM's multimodal examples size
    it) and the LoRA plugin at the adapter's rank and modules (adapter_config.json)."""
    config = read_adapter_config(postrank)
    targets = config["target_modules"]
    unknown = sorted(set(targets) - set(TRTLLM_LORA_MODULES))
    if unknown:
        raise BuildError(f"{postrank}/adapter_config.json: field target_modules has {unknown}, which TensorRT-LLM's "
                         f"LoRA plugin cannot target (it can: {sorted(TRTLLM_LORA_MODULES)})")
    return ["--max_prompt_embedding_table_size", str(soft_rows * plan.max_batch_size),
            "--lora_plugin", "bfloat16", "--max_lora_rank", str(int(config["r"])),
            "--lora_target_modules", *[TRTLLM_LORA_MODULES[t] for t in targets]]


def build_commands(plan: EnginePlan, profile: Profile, checkpoint: str, out: Path, examples: str, *,
                   postrank: str = "", soft_rows: int = 0, lora_task_id: int = 1) -> list[list[str]]:
    """The commands of the 1.2.1 engine flow, then the xgrammar tokenizer info for guided decoding; flags as in examples/models/core/qwen/convert_checkpoint.py
    and tensorrt_llm/commands/build.py (plugin options from tensorrt_llm/plugin/plugin.py `cli_plugin_args`;
    explicit "bfloat16" rather than "auto" is accepted by every release's plugin choices). With a post-ranker, the
    engine takes its soft tokens and adapter, and the adapter is converted for `lora_prefetch_dir`."""
    e = profile.data["engine"]
    unified = out / "checkpoint"
    extra = postrank_flags(plan, postrank, soft_rows) if postrank else []
    lora = [[sys.executable, f"{examples}/{LORA_CONVERT_SCRIPT}", "-i", postrank,
             "-o", str(out / LORA_PREFETCH / str(lora_task_id)), "--storage-type", "float16"]] if postrank else []
    return [
        [sys.executable, f"{examples}/{CONVERT_SCRIPT}", "--model_dir", checkpoint, "--output_dir", str(unified),
         "--dtype", "bfloat16", "--tp_size", str(e["tp_size"])],
        ["trtllm-build", "--checkpoint_dir", str(unified), "--output_dir", str(out / "engine"),
         "--max_batch_size", str(plan.max_batch_size), "--max_input_len", str(plan.max_input_len),
         "--max_seq_len", str(plan.max_seq_len), "--max_num_tokens", str(plan.max_num_tokens),
         "--kv_cache_type", "paged", "--tokens_per_block", str(e["tokens_per_block"]),
         "--gemm_plugin", "bfloat16", "--gpt_attention_plugin", "bfloat16", "--remove_input_padding", "enable",
         "--context_fmha", "enable", "--use_paged_context_fmha", "enable", "--multiple_profiles", "enable", *extra],
        [sys.executable, f"{examples}/{TOKENIZER_INFO_SCRIPT}", "--model_dir", checkpoint, "--output_dir", str(out)],
        *lora,
    ]


def check_pipeline_agrees(profile: Profile, plan: EnginePlan) -> list[str]:
    rerank = profile.data.get("pipeline", {}).get("generation", {}).get("rerank", {})
    problems = []
    if rerank.get("max_input_len", 0) > plan.max_input_len:
        problems.append(f"[pipeline.generation.rerank] max_input_len {rerank['max_input_len']} exceeds the engine's "
                        f"{plan.max_input_len}")
    if rerank.get("max_input_len", 0) + rerank.get("max_new_tokens", 0) > plan.max_seq_len:
        problems.append(f"rerank max_input_len + max_new_tokens exceeds the engine's max_seq_len {plan.max_seq_len}")
    asked = profile.data.get("pipeline", {}).get("limits", {}).get("max_new_tokens")
    if asked is None or rerank.get("max_input_len", 0) + asked > plan.max_seq_len:
        problems.append(f"[pipeline.limits] max_new_tokens ({asked}) must be set, and with the re-rank's "
                        f"max_input_len fit the engine's max_seq_len {plan.max_seq_len}: a request may ask for it")
    return problems


def missing_for_real_build() -> list[str]:
    """What stops a real build on this machine, each said plainly."""
    problem = stack_problem("the engine build")
    problems = [problem] if problem else []
    if shutil.which("trtllm-build") is None:
        problems.append("`trtllm-build` is not on PATH")
    if shutil.which("nvidia-smi") is None or subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode:
        problems.append("no NVIDIA GPU is visible (`nvidia-smi -L` fails)")
    return problems


def memory_table(plan: EnginePlan, profile: Profile) -> str:
    lines = [f"memory plan, profile {profile.name} ({profile.data['gpu']['name']}):"]
    lines += [f"  {label:40} {value:8.2f} GiB" for label, value in plan.memory_rows]
    lines.append(f"  KV cache holds {plan.kv_cache_tokens} tokens = {plan.kv_cache_tokens // plan.typical_request_tokens}"
                 f" typical requests of {plan.typical_request_tokens} tokens -> max_batch_size {plan.max_batch_size}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True, help="a10, a800, or a path to a profile .toml")
    parser.add_argument("--checkpoint", required=True, help="Hugging Face folder of the Qwen3 re-ranker")
    parser.add_argument("--shape", choices=("checkpoint", "qwen3-4b"), default="checkpoint",
                        help="plan with the checkpoint's config.json (default) or Qwen3-4B's published shape")
    parser.add_argument("--out", required=True, type=Path, help="output folder (checkpoint/, engine/, plan)")
    parser.add_argument("--examples-dir", default="/app/tensorrt_llm/examples",
                        help="TensorRT-LLM's examples folder (inside the Triton TRT-LLM image)")
    parser.add_argument("--postrank", default="", help="post-ranker folder: the engine then takes its soft tokens "
                        "and LoRA adapter (ensemble/postrank/checkpoint.py)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the exact commands, run nothing")
    args = parser.parse_args(argv)
    try:
        profile = Profile.load(args.profile)
        if profile.engine is not EngineKind.TENSORRTLLM:
            raise BuildError(f"profile {profile.name} has engine {profile.engine.value!r}; engines are for tensorrtllm "
                             "profiles")
        shape = QWEN3_4B if args.shape == "qwen3-4b" else ModelShape.from_checkpoint(args.checkpoint)
        plan = plan_engine(profile, shape)
        disagreements = check_pipeline_agrees(profile, plan)
        if disagreements:
            raise BuildError("; ".join(disagreements))
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    config = PipelineConfig.load(overrides=profile.data.get("pipeline", {}))
    try:
        commands = build_commands(plan, profile, str(Path(args.checkpoint).resolve()), args.out.resolve(),
                                  args.examples_dir, postrank=str(Path(args.postrank).resolve()) if args.postrank else "",
                                  soft_rows=config.limits.max_window_candidates + 1,
                                  lora_task_id=config.postrank.lora_task_id)
    except (BuildError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(memory_table(plan, profile))
    print("\ncommands:")
    for command in commands:
        print("  " + shlex.join(command))
    if args.dry_run:
        return 0
    problems = missing_for_real_build()
    if problems:
        print("error: cannot build here:\n  - " + "\n  - ".join(problems) + "\n(--dry-run prints the commands)",
              file=sys.stderr)
        return 3
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "engine_plan.json").write_text(json.dumps(asdict(plan) | {"profile": profile.name}, indent=2))
    for command in commands:
        subprocess.run(command, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
