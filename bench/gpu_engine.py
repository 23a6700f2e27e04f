"""GPU benchmark of the PyTorch engine slot: prefill and decode tokens/s and requests/s for the re-rank workload.

Builds a model of the real Qwen3-4B configuration with random BF16 weights (no download), feeds prompts of
the measured re-rank length, and prints throughput next to the GPU's compute and bandwidth bounds. Each batch
runs twice: through the engine slot (`TorchEngine.generate`: budget forcing, then the constrained permutation)
and as a bare `generate` of as many tokens, so the slot's own per-step cost shows. The slot's constraints
need Qwen's tokenizer: the tiny checkpoint's (built on demand) or `--tokenizer DIR`.
`--tiny` runs the same code, much smaller, on the CPU (that is how the test suite runs it).

    python -m bench.gpu_engine --batches 1,4,16 --input 3900 --thinking 768
    python -m bench.gpu_engine --tiny
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from bench.hardware import gpu_from_device_name
from build.model_shape import QWEN3_4B
from build.tiny_checkpoints import VOCAB_SIZE
from engines.torch_engine import ATTENTION_BACKENDS, TorchEngine


def build_model(tiny: bool, device: torch.device, dtype: torch.dtype):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    s = QWEN3_4B
    if tiny:
        config = Qwen3Config(vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=4096)
    else:
        config = Qwen3Config(vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate,
                             num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.kv_heads,
                             head_dim=s.head_dim, max_position_embeddings=40960, tie_word_embeddings=True)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen3ForCausalLM(config).to(dtype).eval()
    return model


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device: torch.device, work) -> float:
    synchronize(device)
    started = time.perf_counter()
    work()
    synchronize(device)
    return time.perf_counter() - started


@torch.inference_mode()
def measure_model(model, ids: torch.Tensor, new_tokens: int) -> dict[str, float]:
    """Bare `generate`: prefill alone (last position's logits only, as generate does), then the whole call."""
    device = ids.device
    mask = torch.ones_like(ids)
    model.generate(input_ids=ids[:, :8], attention_mask=mask[:, :8], max_new_tokens=2, do_sample=False,
                   pad_token_id=0)  # warm-up: kernels, allocator
    prefill = timed(device, lambda: model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=1))
    total = timed(device, lambda: model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
        do_sample=False, pad_token_id=0, eos_token_id=None))
    return {"prefill_s": prefill, "total_s": total, "decode_s": max(total - prefill, 1e-9)}


def measure_slot(engine, ids: torch.Tensor, thinking: int, candidates: int, end_id: int, pad_id: int
                 ) -> dict[str, float]:
    """The engine slot's own path: budget forcing to `thinking` tokens, then a constrained permutation."""
    from engines.generation import GenerationRequest
    from ensemble.constraint import AnswerConstraint

    constraint = AnswerConstraint.permutation(candidates)
    requests = [GenerationRequest(tuple(row), thinking + 4 * candidates + 16, end_id, pad_id, (), thinking,
                                  constraint) for row in ids.tolist()]
    engine.generate([GenerationRequest(requests[0].input_ids[:8], 8, end_id, pad_id, (), 1,
                                       constraint)])  # warm-up: vocabulary lookup, kernels
    results: list = []
    seconds = timed(ids.device, lambda: results.extend(engine.generate(requests)))
    lengths = [len(r.output_ids) + 1 for r in results]  # + the end token each row generated
    return {"total_s": seconds, "steps": max(lengths), "tokens": sum(lengths)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model on the CPU (tests)")
    parser.add_argument("--batches", default=None, help="batch sizes (default 1,4,16 on GPU, 1,2 tiny)")
    parser.add_argument("--input", type=int, default=None, help="prompt tokens (default 3900: measured re-rank prompt)")
    parser.add_argument("--thinking", type=int, default=None,
                        help="thinking budget before the forced answer (default 768, the rerank default; 8 tiny)")
    parser.add_argument("--candidates", type=int, default=20, help="candidates in the permutation answer")
    parser.add_argument("--tokenizer", default=None,
                        help="Qwen tokenizer folder for the slot's constraints (default: the tiny checkpoint's)")
    parser.add_argument("--cudnn-attention", action="store_true",
                        help="let attention use cuDNN too (the engine leaves it out: engines/torch_engine.py)")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    if device.type == "cpu" and not args.tiny:
        print("no GPU visible: run with --tiny for the CPU smoke version", file=sys.stderr)
        return 2
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    batches = [int(b) for b in (args.batches or ("1,2" if args.tiny else "1,4,16")).split(",")]
    input_len = args.input or (64 if args.tiny else 3900)
    thinking = args.thinking if args.thinking is not None else (8 if args.tiny else 768)
    tokenizer_dir = args.tokenizer or str(_tiny_tokenizer_dir())
    model = build_model(args.tiny, device, dtype)
    attention = list(ATTENTION_BACKENDS) + ([SDPBackend.CUDNN_ATTENTION] if args.cudnn_attention else [])
    engine = TorchEngine(tokenizer_dir, vision=False, device=str(device), dtype=str(dtype).removeprefix("torch."),
                         model=model, attention=attention)
    special = _special_ids(tokenizer_dir)
    params = sum(p.numel() for p in model.parameters())
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    gpu = gpu_from_device_name(name)
    print(f"{name}: Qwen3{'-tiny' if args.tiny else '-4B'} shape, {params / 1e9:.2f} B parameters, {dtype}, random "
          f"weights; prompt {input_len} tokens; slot: thinking budget {thinking}, permutation of {args.candidates}; "
          f"attention kernels: {', '.join(b.name.lower() for b in attention)}")
    print(f"{'batch':>5} {'prefill tok/s':>14} {'decode tok/s':>13} {'model req/s':>12} {'slot req/s':>11} "
          f"{'slot ms/step':>13} {'model ms/step':>14} {'prefill bound':>14} {'decode bound':>13}")
    torch.manual_seed(1)
    for batch in batches:
        ids = torch.randint(0, special["first"], (batch, input_len), device=device)
        slot = measure_slot(engine, ids, thinking, args.candidates, special["end"], special["pad"])
        steps = int(slot["steps"])
        with sdpa_kernel(attention):
            m = measure_model(model, ids, steps)
        prefill_bound = decode_bound = "-"
        if gpu is not None:
            prefill_bound = f"{gpu.bf16_tflops * 1e12 / (2 * params):,.0f}"
            kv = QWEN3_4B.kv_bytes_per_token() * (input_len + steps / 2) * batch
            decode_bound = f"{gpu.bandwidth_gbs * 1e9 / (2 * params + kv) * batch:,.0f}"
        slot_step_ms = (slot["total_s"] - m["prefill_s"]) / steps * 1e3
        model_step_ms = m["decode_s"] / steps * 1e3
        print(f"{batch:>5} {batch * input_len / m['prefill_s']:>14,.0f} {batch * steps / m['decode_s']:>13,.1f} "
              f"{batch / m['total_s']:>12.2f} {batch / slot['total_s']:>11.2f} {slot_step_ms:>13.2f} "
              f"{model_step_ms:>14.2f} {prefill_bound:>14} {decode_bound:>13}")
    print("model = bare transformers generate of as many tokens as the slot's longest row; slot = TorchEngine.generate "
          "with budget forcing and the permutation constraint (what the engine slot runs)")
    print("bounds: prefill = peak BF16 FLOP/s / (2 x parameters); decode = bandwidth / (weights + KV read) x batch")
    return 0


def _tiny_tokenizer_dir() -> Path:
    from build.tiny_checkpoints import ensure_tiny_checkpoints

    return ensure_tiny_checkpoints(Path(__file__).resolve().parents[1] / ".cache" / "checkpoints").reranker


def _special_ids(tokenizer_dir: str) -> dict[str, int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    return {"end": tokenizer.convert_tokens_to_ids("<|im_end|>"), "pad": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            "first": min(tokenizer.all_special_ids)}


if __name__ == "__main__":
    sys.exit(main())
