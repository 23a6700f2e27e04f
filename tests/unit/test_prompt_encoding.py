"""Prompt encoding gives exactly the tokenizer's ids (real Qwen BPE): in chunks, and with tiktoken."""

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from build.tiny_checkpoints import build_tokenizer
from ensemble.encoding import CHUNKED_FROM_CHARS as _CHUNKED_FROM_CHARS
from ensemble.encoding import encode_text as _encode

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


# ------------------------------------------------------------------ tiktoken in place of the tokenizer

@functools.cache
def fast():
    from ensemble.fast_bpe import exact_tiktoken

    encode, why = exact_tiktoken(tokenizer())
    assert encode is not None, why
    return encode


@functools.cache
def spec_text() -> str:
    return tokenizer().backend_tokenizer.to_str()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_pieces, st.text(min_size=1, max_size=12)), min_size=1, max_size=40))
def test_tiktoken_gives_the_tokenizers_ids_on_any_text(parts):
    """Qwen's ranks and pre-tokenizer: arbitrary unicode (hypothesis text) mixed with prompt fragments."""
    text = "".join(parts)
    assert fast()(text) == tokenizer().backend_tokenizer.encode(text, add_special_tokens=False).ids


def test_tiktoken_normalizes_like_a_tokenizer_with_nfc():
    import json

    from tokenizers import Tokenizer

    from ensemble.fast_bpe import exact_tiktoken

    spec = json.loads(spec_text())
    spec["normalizer"] = {"type": "NFC"}  # as Qwen2.5 / Qwen3 tokenizer.json have

    class Wrapped:
        backend_tokenizer = Tokenizer.from_str(json.dumps(spec))

    encode, why = exact_tiktoken(Wrapped())
    text = "Cafe\u0301 e\u0301te\u0301 北京"  # decomposed accents: NFC composes them before BPE
    assert encode is not None, why
    assert encode(text) == Wrapped.backend_tokenizer.encode(text, add_special_tokens=False).ids
    assert encode(text) != fast()(text)


@pytest.mark.parametrize("change, reason", [
    (lambda s: s.update(normalizer={"type": "Lowercase"}), "normalizer Lowercase"),
    (lambda s: s["model"].update(dropout=0.1), "dropout"),
    (lambda s: s["model"].update(byte_fallback=True), "byte fallback"),
    (lambda s: s["added_tokens"][0].update(lstrip=True), "not matched verbatim"),
    (lambda s: s.update(pre_tokenizer=s["pre_tokenizer"]["pretokenizers"][1]), "not a regex split"),
    (lambda s: s["model"]["merges"].reverse(), "merge order"),
])
def test_tiktoken_is_refused_where_it_could_differ(change, reason):
    import json

    from tokenizers import Tokenizer

    from ensemble.fast_bpe import exact_tiktoken
    from ensemble.encoding import PromptEncoder

    spec = json.loads(spec_text())
    change(spec)

    class Wrapped:
        backend_tokenizer = Tokenizer.from_str(json.dumps(spec))

        def encode(self, text, add_special_tokens=False):
            return self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    encode, why = exact_tiktoken(Wrapped())
    assert encode is None and reason in why
    encoder = PromptEncoder(Wrapped())  # falls back to the tokenizer itself, and says why
    assert reason in encoder.describe()
    if reason != "dropout":  # dropout makes the tokenizer's own ids random
        assert encoder("北京 guide") == Wrapped().encode("北京 guide")
