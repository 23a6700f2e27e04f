"""Peak numbers of the GPUs we plan for (dense BF16 tensor-core FLOP/s, memory bandwidth), from vendor sheets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    name: str
    bf16_tflops: float
    bandwidth_gbs: float
    memory_gib: float


GPUS = {
    "A10": Gpu("NVIDIA A10", 125.0, 600.0, 24.0),
    "A800": Gpu("NVIDIA A800 80GB", 312.0, 2039.0, 80.0),
    "H100": Gpu("NVIDIA H100 SXM", 989.0, 3350.0, 80.0),
    "H200": Gpu("NVIDIA H200", 989.0, 4800.0, 141.0),
}


def gpu_from_device_name(name: str) -> Gpu | None:
    for key, gpu in GPUS.items():
        if key in name.upper():
            return gpu
    return None
