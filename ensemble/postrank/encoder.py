"""The query-instructed adapter (QIA) in NumPy, as the pre step runs it: features -> one vector per entity in the
LLM's hidden size, a soft token.

Per domain (user, item): each feature's embedding e_f (its rows' weighted mean, plus its numeric value times a
learned direction); the query's vector q guides attention over the features, a = softmax_f((q W_q)·(e_f W_k) / √d);
the entity's vector is (Σ_f a_f e_f W_v) W_o + b_o. The same computation as a torch module, which trains and exports
to ONNX, is build/qia.py; tests hold the two equal.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ensemble.postrank.features import Domain, EncoderInputs

PARAMETERS = ("query", "key", "value", "out", "out_bias", "numeric_scale")
"""Each domain's tensors, named ``<domain>.<parameter>``; ``feature_table`` and ``query_table`` are shared."""


def query_vector(weights: Mapping[str, np.ndarray], indices: np.ndarray, word_weights: np.ndarray) -> np.ndarray:
    """[d]: the query's words' mean row."""
    return (weights["query_table"][indices] * word_weights[:, None]).sum(0)


def encode(weights: Mapping[str, np.ndarray], domain: Domain, query: np.ndarray, inputs: EncoderInputs) -> np.ndarray:
    """[N, hidden] float32: one soft-token row per entity."""
    p = {name: weights[f"{domain.value}.{name}"] for name in PARAMETERS}
    n, f = inputs.values.shape
    if f == 0:  # a schema with no features of this domain: every entity is the bias
        return np.broadcast_to(p["out_bias"], (n, p["out_bias"].shape[0])).astype(np.float32)
    table = weights["feature_table"]
    embedded = (table[inputs.indices] * inputs.weights[..., None]).sum(2)        # [N, F, d]
    embedded = embedded + inputs.values[..., None] * p["numeric_scale"][None]    # [N, F, d]
    asked = query @ p["query"]                                                   # [d]
    scores = (embedded @ p["key"]) @ asked / np.sqrt(asked.shape[0])             # [N, F]
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    attention = scores / scores.sum(-1, keepdims=True)
    fused = (attention[..., None] * (embedded @ p["value"])).sum(1)              # [N, d]
    return (fused @ p["out"] + p["out_bias"]).astype(np.float32)
