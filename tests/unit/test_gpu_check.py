"""bench.gpu_check's shapes and its refusal where no GPU is visible (its --tiny run is in tests/e2e/test_bench.py)."""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

from bench.gpu_check import main, shaped_checkpoints
from build.model_shape import QWEN3_4B, ModelShape
from tests.e2e.conftest import CACHE


def _parameters(folder, loader) -> int:
    with torch.device("meta"):
        model = loader.from_config(AutoConfig.from_pretrained(folder), dtype=torch.bfloat16)
    return sum(p.numel() for p in model.parameters())


def test_the_real_shapes_have_the_published_parameter_counts(tmp_path):
    """Qwen3-4B: 4.02 B; Qwen2.5-VL-7B: 8.29 B (the model cards). A wrong dimension would benchmark another model."""
    reranker, vlm = shaped_checkpoints(tmp_path, tiny=False, cache=CACHE)
    assert round(_parameters(reranker, AutoModelForCausalLM) / 1e9, 2) == 4.02
    assert round(_parameters(vlm, AutoModelForImageTextToText) / 1e9, 2) == 8.29
    assert ModelShape.from_checkpoint(reranker) == QWEN3_4B
    assert not list(reranker.glob("*.safetensors")) and (reranker / "tokenizer.json").exists()
    assert (vlm / "preprocessor_config.json").exists()


def test_without_a_gpu_it_says_so_and_exits_2(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main([]) == 2
    assert "no CUDA device" in capsys.readouterr().err
