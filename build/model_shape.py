"""The transformer dimensions that memory plans, capacity models and benchmarks need, read from config.json.

Imports nothing beyond the standard library, so GPU benchmarks run where only PyTorch and transformers are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class BuildError(RuntimeError):
    """A checkpoint, profile or toolchain that an engine build cannot use."""


@dataclass(frozen=True)
class ModelShape:
    """What the memory plan needs from a Hugging Face config.json (Qwen3 / Qwen2 layout)."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied_embeddings: bool

    @classmethod
    def from_checkpoint(cls, folder: str | Path) -> ModelShape:
        path = Path(folder) / "config.json"
        try:
            config = json.loads(path.read_text())
        except OSError as exc:
            raise BuildError(f"no Hugging Face config.json in {folder}: {exc}") from exc
        config = config.get("text_config", config)
        heads = config["num_attention_heads"]
        return cls(layers=config["num_hidden_layers"], hidden=config["hidden_size"], heads=heads,
                   kv_heads=config.get("num_key_value_heads", heads),
                   head_dim=config.get("head_dim") or config["hidden_size"] // heads,
                   intermediate=config["intermediate_size"], vocab=config["vocab_size"],
                   tied_embeddings=bool(config.get("tie_word_embeddings", False)))

    @property
    def parameters(self) -> int:
        attention = self.hidden * self.head_dim * (2 * self.heads + 2 * self.kv_heads)
        mlp = 3 * self.hidden * self.intermediate
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return self.layers * (attention + mlp + 2 * self.hidden) + embeddings + self.hidden

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes


QWEN3_4B = ModelShape(layers=36, hidden=2560, heads=32, kv_heads=8, head_dim=128, intermediate=9728, vocab=151936,
                      tied_embeddings=True)
"""Qwen3-4B's published config.json, for planning before the checkpoint is at hand (--shape qwen3-4b)."""
