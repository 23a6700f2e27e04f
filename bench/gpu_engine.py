"""GPU benchmark of the PyTorch engine slot: prefill and decode tokens/s and requests/s for the re-rank workload.

Builds a model of the real Qwen3-4B configuration with random BF16 weights (no download), feeds prompts of
the measured re-rank length, and prints throughput next to the GPU's compute and bandwidth bounds.
`--tiny` runs the same code, much smaller, on the CPU (that is how the test suite runs it).

    python -m bench.gpu_engine --batches 1,4,16 --input 3900 --output 256
    python -m bench.gpu_engine --tiny
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from bench.hardware import gpu_from_device_name
from build.engine import QWEN3_4B


def build_model(tiny: bool, device: torch.device, dtype: torch.dtype):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    s = QWEN3_4B
    if tiny:
        config = Qwen3Config(vocab_size=4096, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
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


@torch.inference_mode()
def measure(model, batch: int, input_len: int, output_len: int, device: torch.device) -> dict[str, float]:
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (batch, input_len), device=device)
    mask = torch.ones_like(ids)
    model(input_ids=ids[:, :8], attention_mask=mask[:, :8])  # warm-up (kernels, allocator)
    synchronize(device)
    started = time.perf_counter()
    model(input_ids=ids, attention_mask=mask, use_cache=False)
    synchronize(device)
    prefill = time.perf_counter() - started
    started = time.perf_counter()
    model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=output_len, min_new_tokens=output_len,
                   do_sample=False, pad_token_id=0, eos_token_id=None)
    synchronize(device)
    total = time.perf_counter() - started
    decode = max(total - prefill, 1e-9)
    return {"batch": batch, "prefill_tok_s": batch * input_len / prefill, "decode_tok_s": batch * output_len / decode,
            "requests_s": batch / total, "prefill_s": prefill, "total_s": total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model on the CPU (tests)")
    parser.add_argument("--batches", default=None, help="batch sizes (default 1,4,16 on GPU, 1,2 tiny)")
    parser.add_argument("--input", type=int, default=None, help="prompt tokens (default 3900: measured re-rank prompt)")
    parser.add_argument("--output", type=int, default=None, help="generated tokens (default 256)")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    if device.type == "cpu" and not args.tiny:
        print("no GPU visible: run with --tiny for the CPU smoke version", file=sys.stderr)
        return 2
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    batches = [int(b) for b in (args.batches or ("1,2" if args.tiny else "1,4,16")).split(",")]
    input_len = args.input or (64 if args.tiny else 3900)
    output_len = args.output or (8 if args.tiny else 256)
    model = build_model(args.tiny, device, dtype)
    params = sum(p.numel() for p in model.parameters())
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    gpu = gpu_from_device_name(name)
    print(f"{name}: Qwen3{'-tiny' if args.tiny else '-4B'} shape, {params / 1e9:.2f} B parameters, {dtype}, random "
          f"weights; prompt {input_len} tokens, {output_len} generated")
    header = (f"{'batch':>5} {'prefill tok/s':>14} {'decode tok/s':>13} {'req/s':>7} {'prefill bound':>14} "
              f"{'decode bound':>13}")
    print(header)
    for batch in batches:
        m = measure(model, batch, input_len, output_len, device)
        prefill_bound = decode_bound = "-"
        if gpu is not None:
            prefill_bound = f"{gpu.bf16_tflops * 1e12 / (2 * params):,.0f}"
            kv = QWEN3_4B.kv_bytes_per_token() * (input_len + output_len / 2) * batch
            decode_bound = f"{gpu.bandwidth_gbs * 1e9 / (2 * params + kv) * batch:,.0f}"
        print(f"{batch:>5} {m['prefill_tok_s']:>14,.0f} {m['decode_tok_s']:>13,.1f} {m['requests_s']:>7.2f} "
              f"{prefill_bound:>14} {decode_bound:>13}")
    print("bounds: prefill = peak BF16 FLOP/s / (2 x parameters); decode = bandwidth / (weights + KV read) x batch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
