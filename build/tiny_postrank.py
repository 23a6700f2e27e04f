"""A tiny random post-ranker on the tiny Qwen3 base, in the checkpoint format of ensemble/postrank/checkpoint.py:
a PEFT LoRA adapter (saved by PEFT itself), a random query-instructed adapter and a feature schema of 12 item and
3 user features (numbers, categories, text), the shape of the prompt-length comparison in the issue note."""

from __future__ import annotations

import json
from pathlib import Path

from ensemble.postrank.checkpoint import ENCODER_WEIGHTS, FEATURE_SCHEMA
from ensemble.postrank.features import SCHEMA_FORMAT, FeatureSchema

SEED = 20261206
LORA_RANK = 4
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")

_CATEGORIES = ("news", "sports", "tech", "finance", "entertainment", "travel", "food", "health", "education", "games")


def tiny_schema() -> FeatureSchema:
    item = [
        {"name": "click_through_rate", "kind": "numeric", "range": [0, 1], "buckets": [0.01, 0.03, 0.06, 0.1, 0.2]},
        {"name": "completion_rate", "kind": "numeric", "range": [0, 1], "buckets": [0.2, 0.4, 0.6, 0.8]},
        {"name": "age_hours", "kind": "numeric", "range": [0, 87600], "buckets": [1, 6, 24, 168, 720, 8760]},
        {"name": "likes", "kind": "numeric", "range": [0, 1e9], "buckets": [10, 100, 1e3, 1e4, 1e5, 1e6]},
        {"name": "duration_s", "kind": "numeric", "range": [0, 86400], "buckets": [15, 60, 300, 1200, 3600]},
        {"name": "cover_quality", "kind": "numeric", "range": [1, 4], "buckets": [2, 3, 4]},
        {"name": "author_followers", "kind": "numeric", "range": [0, 1e9], "buckets": [100, 1e4, 1e6]},
        {"name": "category", "kind": "categorical", "vocabulary": list(_CATEGORIES)},
        {"name": "format", "kind": "categorical", "vocabulary": ["article", "video", "image", "live"]},
        {"name": "source_tier", "kind": "categorical", "vocabulary": ["official", "verified", "creator", "other"]},
        {"name": "title", "kind": "text", "max_chars": 512},
        {"name": "tags", "kind": "text", "max_chars": 256},
    ]
    user = [
        {"name": "age_band", "kind": "categorical", "vocabulary": ["<18", "18-24", "25-34", "35-44", "45+"]},
        {"name": "activity_days", "kind": "numeric", "range": [0, 31], "buckets": [1, 7, 20]},
        {"name": "interests", "kind": "text", "max_chars": 256},
    ]
    features = [f | {"domain": "item"} for f in item] + [f | {"domain": "user"} for f in user]
    return FeatureSchema.model_validate_json(json.dumps({
        "format": SCHEMA_FORMAT, "feature_dim": 16, "query_buckets": 512, "max_query_words": 16, "text_buckets": 256,
        "max_text_words": 8, "features": features}))


def save_tiny_postrank(out: Path, base: Path) -> None:
    """The post-ranker folder for the checkpoint at `base` (its hidden size and layers)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    from build.qia import QueryInstructedAdapter

    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    # init_lora_weights=False: random B as well as A, so the adapter changes what the model writes
    lora = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, target_modules=list(LORA_TARGETS),
                      init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(out)
    schema = tiny_schema()
    qia = QueryInstructedAdapter(schema, int(model.config.hidden_size))
    save_file(qia.flat_state(), str(out / ENCODER_WEIGHTS))
    (out / FEATURE_SCHEMA).write_text(json.dumps(schema.model_dump(mode="json"), indent=1) + "\n")
