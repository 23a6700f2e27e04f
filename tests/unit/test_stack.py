"""The GPU stack has one home (engines/stack.py); the Dockerfile, the fail-fast checks and the docs follow it."""

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

from engines import stack

ROOT = Path(__file__).resolve().parents[2]
IMAGE_SHIPS = {"numpy", "torch", "transformers", "tokenizers", "pydantic", "PIL", "tiktoken", "tensorrt_llm",
               "triton_python_backend_utils", "google", "xgrammar", "peft", "safetensors"}
"""Packages the Triton TensorRT-LLM image already holds (TensorRT-LLM's requirements.txt, peft included; safetensors
with transformers; Triton's Python backend)."""
GPU_IMAGE_PROVIDES = {"redis": "redis", "hiredis": "hiredis", "tritonclient": "tritonclient", "grpc": "tritonclient"}
SERVED = ("ensemble", "engines", "server/stub", "store", "model_repository", "build")
"""What a GPU server imports: its stubs and their packages, and build/ to render inside the image."""
OFF_IMAGE = {"build/vision_export.py", "build/tiny_checkpoints.py", "build/k8s.py"}
"""Run elsewhere: the experimental ONNX export, the tests' tiny checkpoints, manifests on an operator's machine."""


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_the_dockerfile_builds_on_the_image_that_ships_tensorrt_llm_1_2_1():
    assert stack.TRITON_IMAGE == "nvcr.io/nvidia/tritonserver:26.07-trtllm-python-py3"
    assert re.search(r"^ARG TRITON_IMAGE=(\S+)$", dockerfile(), re.M).group(1) == stack.TRITON_IMAGE
    assert re.search(r"^FROM \$\{TRITON_IMAGE\}$", dockerfile(), re.M)
    assert "stack_problem" in dockerfile()  # the build fails on any other TensorRT-LLM


def third_party_imports(folder: Path) -> set[str]:
    found = set()
    for path in folder.rglob("*.py"):
        if str(path.relative_to(ROOT)) in OFF_IMAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    project = {p.name for p in ROOT.iterdir() if p.is_dir()}
    return {m for m in found if m not in sys.stdlib_module_names and m not in project and m != "__future__"}


def test_every_package_a_gpu_server_imports_is_in_the_image_or_installed_by_the_dockerfile():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu-image"]
    installed = {re.split(r"[<>=\[ ]", requirement)[0] for requirement in extra}
    assert "'gpu-image'" in dockerfile() and "--no-deps -e ." in dockerfile()
    imported = set().union(*(third_party_imports(ROOT / folder) for folder in SERVED))
    missing = {m for m in imported if m not in IMAGE_SHIPS and GPU_IMAGE_PROVIDES.get(m) not in installed}
    assert not missing, f"add to pyproject's gpu-image extra (the image lacks them): {sorted(missing)}"


def test_the_image_keeps_its_own_pins():
    text = dockerfile()
    assert "pip list --format=freeze > /tmp/image-constraints.txt" in text
    assert "-c /tmp/image-constraints.txt" in text


@pytest.mark.skipif(stack.installed_tensorrt_llm() is not None, reason="TensorRT-LLM is installed here")
def test_without_tensorrt_llm_the_problem_names_version_and_image():
    problem = stack.stack_problem("the engine build")
    assert problem.startswith("the engine build needs TensorRT-LLM 1.2.1") and stack.TRITON_IMAGE in problem


def test_the_deployment_docs_run_the_stack_of_the_code():
    docs = (ROOT / "docs" / "deployment.md").read_text()
    assert stack.TRITON_IMAGE in docs and stack.HOST_DRIVER in docs and stack.TRTLLM_VERSION in docs
    assert "25.12-trtllm-python-py3" not in docs.replace("`25.12-trtllm-python-py3` ships TensorRT-LLM 1.1.0", "")
