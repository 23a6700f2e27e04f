"""The GPU software stack the GPU targets are built and served on, in one place: the `Dockerfile`, the engine
build (build/engine.py), the VLM slot (engines/trtllm_vlm.py) and docs/deployment.md all read it from here.

Source: triton-inference-server/server `docs/introduction/compatibility.md`, table "Container Name:
trtllm-python-py3". Its rows 26.04 to 26.07 ship TensorRT-LLM 1.2.1 with TensorRT 10.14.1.48, CUDA 13.1.0.036
and CUDA driver 590.44.01. The 25.12 image ships TensorRT-LLM 1.1.0 (TensorRT 10.13.3.9), and no trtllm image
follows 26.07 (the 26.11 release notes: "The Triton TensorRT-LLM Backend container image is not included in
this release"). 26.07 is the newest of these; its release (Triton 2.71.0) fixed "a deadlock in decoupled BLS
and a use-after-free in the async_exec pybind callback" in the Python backend, and the BLS model here calls
`async_exec`.
"""

from __future__ import annotations

import importlib.util

TRTLLM_VERSION = "1.2.1"
"""The last release line with compiled engines and the C++ `tensorrtllm` backend."""
TRITON_RELEASE = "26.07"
TRITON_VERSION = "2.71.0"
TRITON_IMAGE = f"nvcr.io/nvidia/tritonserver:{TRITON_RELEASE}-trtllm-python-py3"
TENSORRT_VERSION = "10.14.1.48"
CUDA_VERSION = "13.1.0.036"
HOST_DRIVER = "590.44.01"
"""The CUDA driver the compatibility matrix lists for the image: the hosts' NVIDIA driver is R590 or newer."""
XGRAMMAR_VERSION = "0.1.25"
"""Pinned by TensorRT-LLM 1.2's requirements.txt: the guided-decoding backend both slots use. The tests compile
the regexes the pre steps send with this version."""


class StackMismatch(RuntimeError):
    """TensorRT-LLM is missing, or another version than the one these targets are built for."""


def installed_tensorrt_llm() -> str | None:
    """The installed TensorRT-LLM's version, or None; read from its metadata, so nothing CUDA is loaded."""
    if importlib.util.find_spec("tensorrt_llm") is None:
        return None
    from importlib.metadata import version

    return version("tensorrt_llm")


def stack_problem(what: str) -> str | None:
    """What is wrong with this machine's TensorRT-LLM for `what` (one sentence), or None."""
    found = installed_tensorrt_llm()
    if found is None:
        return (f"{what} needs TensorRT-LLM {TRTLLM_VERSION} (Python package `tensorrt_llm`), which is not "
                f"installed: run it in {TRITON_IMAGE} (the project's Dockerfile builds on it)")
    if found != TRTLLM_VERSION:
        return (f"{what} needs TensorRT-LLM {TRTLLM_VERSION}; {found} is installed (engines and the backend must "
                f"match: use {TRITON_IMAGE})")
    return None
