"""Chunked prompt encoding gives exactly the ids of encoding the whole text (real Qwen BPE)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from build.tiny_checkpoints import build_tokenizer
from ensemble.prompt import _CHUNKED_FROM_CHARS, _encode

TOKENIZER = None


def tokenizer():
    global TOKENIZER
    if TOKENIZER is None:
        TOKENIZER = build_tokenizer()
    return TOKENIZER


_pieces = st.sampled_from(["\n", "\n\n", " \n", "。\n", "[ID] 3", "北京旅游", " guide", "  ", "\t", "12.5%", "<|im_end|>",
                           "<|im_start|>user\n", "…", "！", "a", "Z", "'s", "\r\n", "[Title] ", "–", "😀"])


@settings(max_examples=150, deadline=None)
@given(st.lists(_pieces, min_size=1, max_size=60), st.integers(1, 80))
def test_chunked_encoding_equals_whole_encoding(pieces, repeat):
    text = "".join(pieces) * repeat
    if len(text) < _CHUNKED_FROM_CHARS:
        text = text + "\n" + "x" * _CHUNKED_FROM_CHARS + "\n" + text
    tok = tokenizer()
    assert _encode(tok, text) == tok.backend_tokenizer.encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize("text", ["", "short", "a\nb"])
def test_short_texts(text):
    tok = tokenizer()
    assert _encode(tok, text) == tok.encode(text, add_special_tokens=False)
