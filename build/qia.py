"""The query-instructed adapter (seed 004's QIA) as a torch module: what a trainer optimises and what exports to
ONNX. Serving runs the same computation in NumPy (ensemble/postrank/encoder.py); tests hold the three equal.

    python -m build.qia --checkpoint <post-ranker folder> --out encoder.onnx
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import nn

from ensemble.postrank.checkpoint import ENCODER_WEIGHTS, FEATURE_SCHEMA
from ensemble.postrank.encoder import PARAMETERS
from ensemble.postrank.features import Domain, FeatureSchema

ONNX_INPUTS = ("query_indices", "query_weights", "user_indices", "user_weights", "user_values", "item_indices",
               "item_weights", "item_values")
ONNX_OUTPUTS = ("user_rows", "item_rows")


class DomainAttention(nn.Module):
    """One domain's features -> one vector per entity, attention guided by the query."""

    def __init__(self, features: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(dim, dim) / math.sqrt(dim))
        self.key = nn.Parameter(torch.randn(dim, dim) / math.sqrt(dim))
        self.value = nn.Parameter(torch.randn(dim, dim) / math.sqrt(dim))
        self.out = nn.Parameter(torch.randn(dim, hidden) / math.sqrt(dim))
        self.out_bias = nn.Parameter(torch.zeros(hidden))
        self.numeric_scale = nn.Parameter(torch.randn(features, dim) * 0.1)

    def forward(self, table: torch.Tensor, query: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor,
                values: torch.Tensor) -> torch.Tensor:
        embedded = (table[indices] * weights.unsqueeze(-1)).sum(2) + values.unsqueeze(-1) * self.numeric_scale
        asked = query @ self.query
        scores = (embedded @ self.key) @ asked / math.sqrt(asked.shape[0])
        attention = torch.softmax(scores, dim=-1)
        fused = (attention.unsqueeze(-1) * (embedded @ self.value)).sum(1)
        return fused @ self.out + self.out_bias


class QueryInstructedAdapter(nn.Module):
    def __init__(self, schema: FeatureSchema, hidden: int) -> None:
        super().__init__()
        d = schema.feature_dim
        self.feature_table = nn.Parameter(torch.randn(schema.table_rows, d) * 0.5)
        self.query_table = nn.Parameter(torch.randn(schema.query_buckets, d) * 0.5)
        self.domains = nn.ModuleDict({dom.value: DomainAttention(len(schema.of(dom)), d, hidden) for dom in Domain})

    def forward(self, query_indices, query_weights, user_indices, user_weights, user_values, item_indices,
                item_weights, item_values):
        query = (self.query_table[query_indices] * query_weights.unsqueeze(-1)).sum(0)
        user = self.domains["user"](self.feature_table, query, user_indices, user_weights, user_values)
        item = self.domains["item"](self.feature_table, query, item_indices, item_weights, item_values)
        return user, item

    def flat_state(self) -> dict[str, torch.Tensor]:
        """The tensors under the names encoder.safetensors uses."""
        out = {"feature_table": self.feature_table.detach(), "query_table": self.query_table.detach()}
        for dom, module in self.domains.items():
            out |= {f"{dom}.{name}": getattr(module, name).detach() for name in PARAMETERS}
        return {k: v.contiguous() for k, v in out.items()}

    def load_flat(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.feature_table.copy_(tensors["feature_table"])
            self.query_table.copy_(tensors["query_table"])
            for dom, module in self.domains.items():
                for name in PARAMETERS:
                    getattr(module, name).copy_(tensors[f"{dom}.{name}"])


def load(folder: str | Path) -> tuple[QueryInstructedAdapter, FeatureSchema]:
    """A post-ranker folder's encoder (its output width is the base's hidden size) and feature schema."""
    from safetensors.torch import load_file

    folder = Path(folder)
    schema = FeatureSchema.model_validate_json((folder / FEATURE_SCHEMA).read_bytes())
    tensors = load_file(str(folder / ENCODER_WEIGHTS))
    module = QueryInstructedAdapter(schema, int(tensors["item.out"].shape[1]))
    module.load_flat(tensors)
    return module.eval(), schema


def export_onnx(module: QueryInstructedAdapter, schema: FeatureSchema, out: str | Path) -> Path:
    """The encoder as an ONNX graph (entities and words as dynamic axes)."""
    k_user = schema.max_text_words if any(f.kind.value == "text" for f in schema.of(Domain.USER)) else 1
    k_item = schema.max_text_words if any(f.kind.value == "text" for f in schema.of(Domain.ITEM)) else 1
    fu, fi = len(schema.of(Domain.USER)), len(schema.of(Domain.ITEM))
    example = (torch.zeros(schema.max_query_words, dtype=torch.long), torch.zeros(schema.max_query_words),
               torch.zeros(1, fu, k_user, dtype=torch.long), torch.ones(1, fu, k_user), torch.zeros(1, fu),
               torch.zeros(3, fi, k_item, dtype=torch.long), torch.ones(3, fi, k_item), torch.zeros(3, fi))
    out = Path(out)
    torch.onnx.export(module, example, str(out), input_names=list(ONNX_INPUTS), output_names=list(ONNX_OUTPUTS),
                      dynamic_axes={"item_indices": {0: "items"}, "item_weights": {0: "items"},
                                    "item_values": {0: "items"}, "item_rows": {0: "items"}},
                      opset_version=17, dynamo=False)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export a post-ranker's encoder to ONNX")
    parser.add_argument("--checkpoint", required=True, help="the post-ranker folder")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    module, schema = load(args.checkpoint)
    print(export_onnx(module, schema, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
