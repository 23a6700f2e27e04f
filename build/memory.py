"""How much KV cache each model on a GPU really gets, whichever Triton loads first.

Both TensorRT-LLM runtimes size their paged KV cache as the *smaller* of a token cap and a fraction of the GPU
memory free when they size it: `max_tokens_in_paged_kv_cache` and `kv_cache_free_gpu_mem_fraction` for the
`tensorrtllm` backend (tensorrtllm_backend docs/model_config.md), `KvCacheConfig(max_tokens=...,
free_gpu_memory_fraction=...)` for the LLM API. The cap is an upper bound, not a reservation. Triton loads
models in parallel, so the memory free at that moment depends on the order:
- first to load: nearly the whole card is free, and the cap binds;
- second: what the first left, which by the memory plan is this model's budget plus the part of the reserve
  not yet allocated (half of `reserve_gib` is taken as allocated: CUDA contexts, Triton's buffers).
So the fraction is sized for the second case (budget / (budget + reserve / 2)): whichever order, the model gets
its budget. A fraction of the memory free with the model alone (0.334 for the a10 re-ranker) would leave it
about 1.5 of its 4 GiB whenever the VLM loads first.
"""

from __future__ import annotations

import math

MAX_FRACTION = 0.99


def kv_fraction(budget_gib: float, reserve_gib: float) -> float:
    """The fraction of free memory that yields `budget_gib` when this model loads last (rounded up)."""
    if budget_gib <= 0:
        raise ValueError(f"a KV budget must be positive, got {budget_gib} GiB")
    return min(MAX_FRACTION, math.ceil(1000 * budget_gib / (budget_gib + reserve_gib / 2)) / 1000)


def allocated_gib(cap_gib: float, fraction: float, free_gib: float) -> float:
    """What the runtime allocates: the smaller of the cap and the fraction of the free memory."""
    return min(cap_gib, fraction * free_gib)
