"""The device check: the PyTorch engine slots at the real shapes, then the pipeline's latency over gRPC on them.

    python -m bench.gpu_check             # a GPU: Qwen3-4B and Qwen2.5-VL-7B shapes, random BF16, within 8 minutes
    python -m bench.gpu_check --tiny      # the same code on the CPU at the tiny shapes (how the test suite runs it)

1. Slots. The re-rank slot (Qwen3-4B configuration: a prompt of the measured re-rank length, budget forcing, the
   constrained permutation of 20) and the cover slot (Qwen2.5-VL-7B configuration: one cover of 256 visual tokens
   per row and a 48-token answer), each at batch 1, 4 and 16 through `TorchEngine.generate`, as the slot runs it.
   Prefill and decode tokens/s beside the bounds of the GPU's sheet (bench/hardware.py): prefill = peak BF16
   FLOP/s / (2 x parameters), decode = bandwidth / (weights + the batch's KV cache read per step) x batch.
2. Pipeline. tritonserver on the cpu profile's repository (the BLS and both slots) with the slots on the GPU at those shapes
   (`target.weights = "random"`: the checkpoint folder's config.json, random values made on the device, nothing
   read from disk), the cover cache and grade store off; `rich_media_reranker` over gRPC from 1, 2, 4 and 8
   closed-loop clients: bench.latency's table, the client's time beside the BLS's own.

No download: weights are random and the tokenizer and image processor are the tiny checkpoint's (Qwen's real BPE
and special ids; build/tiny_checkpoints.py). Generation settings are the cpu profile's (short thinking budgets);
random weights write nonsense, so every row runs to its budget: the figures are the cost of that many tokens.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.hardware import Gpu, gpu_from_device_name
from bench.runner import ROOT
from build.model_shape import ModelShape
from build.tiny_checkpoints import FIRST_SPECIAL_ID, SPECIAL_TOKENS, VOCAB_SIZE, ensure_tiny_checkpoints
from ensemble import names

SPECIAL = {token: FIRST_SPECIAL_ID + i for i, token in enumerate(SPECIAL_TOKENS)}
QWEN3_4B_CONFIG = dict(vocab_size=VOCAB_SIZE, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                       num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
                       rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                       bos_token_id=SPECIAL["<|endoftext|>"], eos_token_id=SPECIAL["<|im_end|>"],
                       pad_token_id=SPECIAL["<|endoftext|>"])
"""Qwen3-4B's published config.json (the dimensions build.model_shape.QWEN3_4B plans with)."""
QWEN25_VL_7B_TEXT = dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                         num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000,
                         rope_theta=1000000.0, rms_norm_eps=1e-6,
                         rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]})
QWEN25_VL_7B_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                           fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2)
"""Qwen2.5-VL-7B-Instruct's published config.json."""
COVER_PIXELS = 448 * 448
"""A cover is resized to this area: 32 x 32 patches of 14 px, merged 2 x 2 into 256 visual tokens (bench.capacity's
VISUAL_TOKENS_PER_COVER)."""
COVER_PROMPT_TOKENS = 160
COVER_ANSWER_TOKENS = 48


@dataclass(frozen=True)
class Settings:
    device: str
    dtype: str
    batches: list[int]
    rerank_input: int
    thinking: int
    candidates: int
    levels: list[int]
    seconds: float


def settings(args: argparse.Namespace) -> Settings:
    tiny = args.tiny
    return Settings(device="cpu" if tiny else "cuda", dtype="float32" if tiny else "bfloat16",
                    batches=_ints(args.batches or ("1,2" if tiny else "1,4,16")),
                    rerank_input=args.input or (64 if tiny else 3900),
                    thinking=args.thinking if args.thinking is not None else (4 if tiny else 256),
                    candidates=args.candidates, levels=_ints(args.levels or ("1,2" if tiny else "1,2,4,8")),
                    seconds=args.seconds or (3.0 if tiny else 20.0))


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def shaped_checkpoints(out: Path, tiny: bool, cache: Path) -> tuple[Path, Path]:
    """Checkpoint folders without weights: the tiny checkpoints' tokenizer and image processor beside a
    config.json of the real shape (or the tiny one's, with `tiny`). Served with `weights = "random"`."""
    from transformers import Qwen2_5_VLConfig, Qwen2VLImageProcessorPil, Qwen3Config

    source = ensure_tiny_checkpoints(cache / "checkpoints")
    folders = []
    for name, tiny_folder in (("qwen3", source.reranker), ("qwen2_5_vl", source.vlm)):
        folder = out / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for file in tiny_folder.iterdir():
            if file.is_file() and not file.name.endswith(".safetensors") and not file.name.startswith("model"):
                shutil.copy2(file, folder / file.name)
        folders.append(folder)
    reranker, vlm = folders
    if not tiny:
        Qwen3Config(**QWEN3_4B_CONFIG).save_pretrained(reranker)
        Qwen2_5_VLConfig(text_config=QWEN25_VL_7B_TEXT, vision_config=QWEN25_VL_7B_VISION,
                         image_token_id=SPECIAL["<|image_pad|>"], video_token_id=SPECIAL["<|video_pad|>"],
                         vision_start_token_id=SPECIAL["<|vision_start|>"],
                         vision_end_token_id=SPECIAL["<|vision_end|>"], eos_token_id=SPECIAL["<|im_end|>"],
                         pad_token_id=SPECIAL["<|endoftext|>"], tie_word_embeddings=False).save_pretrained(vlm)
        Qwen2VLImageProcessorPil(min_pixels=COVER_PIXELS, max_pixels=COVER_PIXELS, patch_size=14, merge_size=2,
                                 temporal_patch_size=2).save_pretrained(vlm)
    return reranker, vlm


def cover_images(count: int, side: int) -> list[bytes]:
    """Distinct noise images (each row decodes and encodes its own cover, as distinct covers do)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    images = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buffer, format="PNG")
        images.append(buffer.getvalue())
    return images


def _timed(device, work) -> float:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def measure_rerank(engine, s: Settings, batch: int) -> dict[str, float]:
    """Prefill alone (the last position's logits, as generation does), then the slot's whole generation."""
    import torch

    from engines.generation import GenerationRequest
    from ensemble.constraint import AnswerConstraint

    torch.manual_seed(batch)
    ids = torch.randint(0, FIRST_SPECIAL_ID, (batch, s.rerank_input), device=engine.device)
    with torch.inference_mode():
        prefill = _timed(engine.device, lambda: engine.model(input_ids=ids, use_cache=False, logits_to_keep=1))
    constraint = AnswerConstraint.permutation(s.candidates)
    requests = [GenerationRequest(tuple(row), s.thinking + 4 * s.candidates + 16, SPECIAL["<|im_end|>"],
                                  SPECIAL["<|endoftext|>"], (), s.thinking, constraint) for row in ids.tolist()]
    results: list = []
    total = _timed(engine.device, lambda: results.extend(engine.generate(requests)))
    steps = max(len(r.output_ids) for r in results) + 1  # + the end token
    return {"prefill_s": prefill, "total_s": total, "steps": steps, "prompt": s.rerank_input}


def measure_cover(engine, s: Settings, batch: int, images: list[bytes]) -> dict[str, float]:
    """Rows of one cover each: the vision encoder, prefill and a fixed-length answer (no end token is let stop
    it early, so every batch decodes the same number of steps)."""
    import torch

    from engines.generation import GenerationRequest

    torch.manual_seed(batch)
    text = torch.randint(0, FIRST_SPECIAL_ID, (COVER_PROMPT_TOKENS,)).tolist()
    prompt = (SPECIAL["<|im_start|>"], *text[:8], SPECIAL["<|vision_start|>"], SPECIAL["<|image_pad|>"],
              SPECIAL["<|vision_end|>"], *text[8:])
    requests = [GenerationRequest(prompt, COVER_ANSWER_TOKENS, -1, SPECIAL["<|endoftext|>"])] * batch
    results: list = []
    total = _timed(engine.device, lambda: results.extend(engine.generate(requests, images[:batch])))
    failed = [r for r in results if not hasattr(r, "output_ids")]
    if failed:
        raise RuntimeError(f"cover slot refused a row: {failed[0]}")
    visual = _visual_tokens(engine)
    prefill = _timed(engine.device, lambda: engine.generate(
        [GenerationRequest(prompt, 1, -1, SPECIAL["<|endoftext|>"])] * batch, images[:batch]))
    return {"prefill_s": prefill, "total_s": total, "steps": COVER_ANSWER_TOKENS,
            "prompt": len(prompt) - 1 + visual}


def _visual_tokens(engine) -> int:
    side = int(engine.max_pixels ** 0.5) // (14 * engine.merge)
    return side * side


def bounds(gpu: Gpu | None, params: int, shape: ModelShape, prompt: int, steps: int, batch: int
           ) -> tuple[str, str]:
    if gpu is None:
        return "-", "-"
    prefill = gpu.bf16_tflops * 1e12 / (2 * params)
    kv = shape.kv_bytes_per_token() * (prompt + steps / 2) * batch
    decode = gpu.bandwidth_gbs * 1e9 / (2 * params + kv) * batch
    return f"{prefill:,.0f}", f"{decode:,.0f}"


SLOT_HEADER = (f"{'slot':7} {'batch':>5} {'prompt':>6} {'steps':>5} {'req/s':>7} {'prefill tok/s':>14} "
               f"{'bound':>9} {'decode tok/s':>13} {'bound':>9} {'ms/step':>8}")


def slot_row(slot: str, batch: int, m: dict[str, float], bound: tuple[str, str]) -> str:
    decode_s = max(m["total_s"] - m["prefill_s"], 1e-9)
    return (f"{slot:7} {batch:>5} {m['prompt']:>6} {m['steps']:>5} {batch / m['total_s']:>7.2f} "
            f"{batch * m['prompt'] / m['prefill_s']:>14,.0f} {bound[0]:>9} {batch * m['steps'] / decode_s:>13,.1f} "
            f"{bound[1]:>9} {decode_s / m['steps'] * 1e3:>8.2f}")


def run_slots(reranker: Path, vlm: Path, s: Settings) -> None:
    import torch

    from engines.torch_engine import TorchEngine

    name = torch.cuda.get_device_name() if s.device == "cuda" else "CPU"
    gpu = gpu_from_device_name(name)
    print(f"{name}: engine slots, random {s.dtype} weights; re-rank prompt {s.rerank_input} tokens, thinking budget "
          f"{s.thinking}, permutation of {s.candidates}; covers of {COVER_PIXELS} px, {COVER_ANSWER_TOKENS}-token "
          f"answers", flush=True)
    print(SLOT_HEADER)
    for slot, folder, vision in (("rerank", reranker, False), ("cover", vlm, True)):
        torch.manual_seed(0)
        started = time.perf_counter()
        engine = TorchEngine(str(folder), vision=vision, device=s.device, dtype=s.dtype, random_weights=True)
        params = sum(p.numel() for p in engine.model.parameters())
        print(f"# {slot}: {params / 1e9:.2f} B parameters, made in {time.perf_counter() - started:.1f} s",
              file=sys.stderr, flush=True)
        shape = ModelShape.from_checkpoint(folder)
        images = cover_images(max(s.batches), int(COVER_PIXELS ** 0.5)) if vision else []
        warm = measure_cover if vision else measure_rerank
        warm(engine, Settings(**{**s.__dict__, "thinking": 1, "rerank_input": 16}), 1, *([images] if vision else []))
        for batch in s.batches:
            m = measure_cover(engine, s, batch, images) if vision else measure_rerank(engine, s, batch)
            print(slot_row(slot, batch, m, bounds(gpu, params, shape, int(m["prompt"]), int(m["steps"]), batch)),
                  flush=True)
        del engine
        if s.device == "cuda":
            torch.cuda.empty_cache()
    print("prefill bound = peak BF16 FLOP/s / (2 x parameters); decode bound = bandwidth / (weights + KV read per "
          "step) x batch; cover prefill includes the vision encoder and image preprocessing")


def run_pipeline(reranker: Path, vlm: Path, s: Settings, work: Path, cache: Path, out: Path) -> None:
    from bench.latency import NO_SHARING, warm_up, print_table, run_level, write_csv
    from bench.runner import start_cpu_server
    from build.profile import Checkpoints
    from clients.workload import Workload

    overrides = {**NO_SHARING, "target": {"device": s.device, "dtype": s.dtype, "weights": "random"}}
    pool = Workload.load(ROOT / "bench/workloads/paper.json").requests()
    started = time.perf_counter()
    with start_cpu_server(cache, "", work / "pipeline", overrides=overrides,
                          checkpoints=Checkpoints(str(reranker), str(vlm)), models=names.PIPELINE_MODELS) as server:
        url = f"127.0.0.1:{server.options.grpc_port}"
        print(f"# pipeline: serving on {url} after {time.perf_counter() - started:.0f} s", file=sys.stderr,
              flush=True)
        warm_up(url, pool[:2])
        levels = [run_level(url, "gpu" if s.device == "cuda" else "cpu", clients, s.seconds, pool)
                  for clients in s.levels]
    print_table(f"{s.dtype} random-weight", {"this": levels})
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "gpu_check.csv", [("gpu_check", level) for level in levels])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes on the CPU (the test suite's run)")
    parser.add_argument("--batches", help="slot batch sizes (default 1,4,16; tiny 1,2)")
    parser.add_argument("--input", type=int, help="re-rank prompt tokens (default 3900, the measured prompt)")
    parser.add_argument("--thinking", type=int, help="re-rank slot's thinking budget (default 256; tiny 4)")
    parser.add_argument("--candidates", type=int, default=20, help="candidates in the permutation answer")
    parser.add_argument("--levels", help="pipeline: concurrent clients per level (default 1,2,4,8; tiny 1,2)")
    parser.add_argument("--seconds", type=float, help="pipeline: seconds per level (default 20; tiny 3)")
    parser.add_argument("--skip", choices=("slots", "pipeline"), action="append", default=[],
                        help="leave a part out")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache", help="where the tiny checkpoints are kept")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/gpu_check")
    args = parser.parse_args(argv)
    import torch

    if not args.tiny and not torch.cuda.is_available():
        print("bench.gpu_check: no CUDA device is visible (torch.cuda.is_available() is False); run it on a GPU "
              "machine, or with --tiny for the CPU form", file=sys.stderr)
        return 2
    s = settings(args)
    started = time.perf_counter()
    reranker, vlm = shaped_checkpoints(args.out / "checkpoints", args.tiny, args.cache)
    if "slots" not in args.skip:
        run_slots(reranker, vlm, s)
    if "pipeline" not in args.skip:
        run_pipeline(reranker, vlm, s, args.out, args.cache, args.out)
    print(f"\nbench.gpu_check took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
