"""The post-ranker checkpoint folder, read and checked against the base it runs on.

    <folder>/adapter_config.json        PEFT's LoRA config (peft_type LORA, r, lora_alpha, target_modules)
    <folder>/adapter_model.safetensors  PEFT's LoRA weights on the Qwen3 base (lora_A [r, in], lora_B [out, r])
    <folder>/encoder.safetensors        the query-instructed adapter (ensemble/postrank/encoder.py)
    <folder>/features.json              the feature schema (ensemble/postrank/features.py)

A file that does not fit the base (rank, hidden size, target modules, layers) fails at load with a ConfigError
naming the file and the field, never at a request.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from ensemble.config import ConfigError
from ensemble.postrank.features import Domain, FeatureSchema

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ENCODER_WEIGHTS = "encoder.safetensors"
FEATURE_SCHEMA = "features.json"
_LORA_KEY = re.compile(r"layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$")


def module_shapes(text_config: Any) -> dict[str, tuple[int, int]]:
    """(in, out) features of each linear layer LoRA may target in a Qwen3 decoder layer."""
    hidden, inner = int(text_config.hidden_size), int(text_config.intermediate_size)
    heads, kv = int(text_config.num_attention_heads), int(text_config.num_key_value_heads)
    head = int(getattr(text_config, "head_dim", None) or hidden // heads)
    return {"q_proj": (hidden, heads * head), "k_proj": (hidden, kv * head), "v_proj": (hidden, kv * head),
            "o_proj": (heads * head, hidden), "gate_proj": (hidden, inner), "up_proj": (hidden, inner),
            "down_proj": (inner, hidden)}


def _shapes(path: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "np") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except Exception as exc:  # noqa: BLE001 - unreadable or not safetensors
        raise ConfigError(f"{path}: cannot be read as safetensors ({exc})") from None


def read_adapter_config(folder: str | Path) -> dict[str, Any]:
    """adapter_config.json of a LoRA adapter, its `target_modules` as a list (PEFT allows one name as a string);
    a ConfigError naming the file and field where it is not one."""
    path = Path(folder) / ADAPTER_CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    if config.get("peft_type") != "LORA":
        raise ConfigError(f"{path}: field peft_type must be \"LORA\", got {config.get('peft_type')!r}")
    rank = config.get("r")
    if not isinstance(rank, int) or rank <= 0:
        raise ConfigError(f"{path}: field r must be a positive integer, got {rank!r}")
    targets = config.get("target_modules")
    return config | {"target_modules": [targets] if isinstance(targets, str) else list(targets or [])}


def check_adapter(folder: str | Path, text_config: Any) -> dict[str, Any]:
    """The adapter's config, after checking it and every weight against the base's `text_config`."""
    folder = Path(folder)
    path = folder / ADAPTER_CONFIG
    config = read_adapter_config(folder)
    rank, targets = config["r"], config["target_modules"]
    shapes = module_shapes(text_config)
    unknown = sorted(set(targets) - set(shapes))
    if not targets or unknown:
        raise ConfigError(f"{path}: field target_modules must name modules of the base ({', '.join(shapes)}), "
                          f"got {targets!r}" + (f" ({', '.join(unknown)} unknown)" if unknown else ""))
    weights = folder / ADAPTER_WEIGHTS
    layers = int(text_config.num_hidden_layers)
    seen = 0
    for key, shape in _shapes(weights).items():
        match = _LORA_KEY.search(key)
        if not match:
            continue
        layer, _, module, side = int(match[1]), match[2], match[3], match[4]
        if module not in targets:
            raise ConfigError(f"{weights}: field {key} is a module not in {ADAPTER_CONFIG}'s target_modules")
        if layer >= layers:
            raise ConfigError(f"{weights}: field {key} is layer {layer}; the base has {layers} (num_hidden_layers)")
        n_in, n_out = shapes[module]
        want = (rank, n_in) if side == "A" else (n_out, rank)
        if shape != want:
            raise ConfigError(f"{weights}: field {key} is {list(shape)}, the base needs {list(want)} "
                              f"(r={rank}, hidden_size={text_config.hidden_size})")
        seen += 1
    if not seen:
        raise ConfigError(f"{weights}: holds no LoRA weights (keys ending lora_A.weight / lora_B.weight)")
    return config


@dataclass(frozen=True)
class PostRanker:
    """The encoder's weights and the feature schema, checked against the base's hidden size."""

    schema: FeatureSchema
    weights: dict[str, np.ndarray]
    hidden_size: int

    @classmethod
    def load(cls, folder: str | Path, hidden_size: int) -> PostRanker:
        folder = Path(folder)
        path = folder / FEATURE_SCHEMA
        try:
            schema = FeatureSchema.model_validate_json(path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read ({exc})") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise ConfigError(f"{path}: field {where}: {first['msg']}") from None
        from safetensors.numpy import load_file

        weights_path = folder / ENCODER_WEIGHTS
        _shapes(weights_path)  # a readable file, else a ConfigError naming it
        weights = {k: v.astype(np.float32) for k, v in load_file(str(weights_path)).items()}
        d = schema.feature_dim
        want = {"feature_table": (schema.table_rows, d), "query_table": (schema.query_buckets, d)}
        for domain in Domain:
            f = len(schema.of(domain))
            want |= {f"{domain.value}.query": (d, d), f"{domain.value}.key": (d, d), f"{domain.value}.value": (d, d),
                     f"{domain.value}.out": (d, hidden_size), f"{domain.value}.out_bias": (hidden_size,),
                     f"{domain.value}.numeric_scale": (f, d)}
        for key, shape in want.items():
            got = weights.get(key)
            if got is None:
                raise ConfigError(f"{weights_path}: field {key} is missing")
            if got.shape != shape:
                raise ConfigError(f"{weights_path}: field {key} is {list(got.shape)}, want {list(shape)} "
                                  f"({FEATURE_SCHEMA}: feature_dim={d}; the base's hidden_size={hidden_size})")
        return cls(schema, weights, hidden_size)


def base_text_config(folder: Path) -> Any:
    """The base checkpoint's text settings (vocab_size, hidden_size, ...) from its config.json."""
    from types import SimpleNamespace

    path = Path(folder) / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: the base checkpoint's config cannot be read ({exc})") from None
    return SimpleNamespace(**(data.get("text_config") or data))
