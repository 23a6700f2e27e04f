from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from ensemble.config import PipelineConfig


class CharTokenizer:
    """One token per character: makes token budgets easy to reason about in tests."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(ch) for ch in text]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return "".join(chr(i) for i in ids)

    def apply_chat_template(self, conversation, *, tokenize=False, add_generation_prompt=True) -> str:
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in conversation)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


@pytest.fixture
def char_tokenizer() -> CharTokenizer:
    return CharTokenizer()


@pytest.fixture(scope="session")
def pipeline_config() -> PipelineConfig:
    return PipelineConfig.load()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    from store.local_redis import RedisServer

    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def promtool() -> str:
    """Prometheus' own checker (Debian's prometheus package, which `make test` installs)."""
    import shutil

    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: install Debian's prometheus package (make test does)")
    return path


@pytest.fixture(scope="session")
def qwen3_checkpoint(tmp_path_factory):
    """A config.json with Qwen3-4B's published shape (no weights are needed to plan or render)."""
    folder = tmp_path_factory.mktemp("qwen3-4b")
    (folder / "config.json").write_text(json.dumps({
        "num_hidden_layers": 36, "hidden_size": 2560, "num_attention_heads": 32, "num_key_value_heads": 8,
        "head_dim": 128, "intermediate_size": 9728, "vocab_size": 151936, "tie_word_embeddings": True}))
    return folder
