"""Export the Qwen2.5-VL vision tower to ONNX (dynamic number of patches) and check it against PyTorch.

EXPERIMENTAL: TensorRT-LLM 1.2.1 has no Qwen2.5-VL engine flow (only Qwen2-VL), so production runs the VLM
on TensorRT-LLM's PyTorch backend. This export is the first half of a compiled encoder: the ONNX graph a
TensorRT engine can be built from, verified here on CPU with onnxruntime.

The tower's data-dependent parts (window order, rotary positions, which patches attend to which) depend
only on each image's patch grid, so they are computed in Python from `grid_thw` and fed to the graph as
inputs; inside, attention uses block-diagonal masks instead of per-image splits. Everything else runs the
checkpoint's own modules.

    python -m build.vision_export --checkpoint .cache/checkpoints/tiny-qwen2.5-vl --out .cache/vision.onnx
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

INPUT_NAMES = ("pixel_values", "cos", "sin", "window_index", "reverse_index", "full_mask", "window_mask")
OUTPUT_NAME = "image_embeds"


def _vision_helpers():
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

    return qwen


class ExportableVisionTower(nn.Module):
    """The checkpoint's vision tower with grid-dependent indexing moved to inputs."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual
        self.unit = visual.spatial_merge_unit
        self.full_layers = set(visual.fullatt_block_indexes)

    def _attention(self, attn: nn.Module, x, cos, sin, mask):
        apply_rope = _vision_helpers().apply_rotary_pos_emb_vision
        n = x.shape[0]
        q, k, v = attn.qkv(x).reshape(n, 3, attn.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        q, k = apply_rope(q, k, cos, sin)
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))  # [heads, n, head_dim]
        weights = torch.softmax(q @ k.transpose(-1, -2) * attn.scaling + mask, dim=-1)
        return attn.proj((weights @ v).transpose(0, 1).reshape(n, -1))

    def forward(self, pixel_values, cos, sin, window_index, reverse_index, full_mask, window_mask):
        hidden = self.visual.patch_embed(pixel_values)
        width = hidden.shape[-1]
        hidden = hidden.reshape(-1, self.unit, width)[window_index].reshape(-1, width)
        for number, block in enumerate(self.visual.blocks):
            mask = full_mask if number in self.full_layers else window_mask
            hidden = hidden + self._attention(block.attn, block.norm1(hidden), cos, sin, mask)
            hidden = hidden + block.mlp(block.norm2(hidden))
        return self.visual.merger(hidden)[reverse_index]


def _block_mask(cu_seqlens: torch.Tensor, n: int) -> torch.Tensor:
    segment = torch.zeros(n, dtype=torch.long)
    for start in cu_seqlens[1:-1].tolist():
        segment[start:] += 1
    same = segment[:, None] == segment[None, :]
    return torch.where(same, 0.0, torch.finfo(torch.float32).min).to(torch.float32)


def graph_inputs(visual: nn.Module, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the graph needs besides pixels, from the grid alone (the same helpers the tower's forward uses)."""
    qwen = _vision_helpers()
    position_ids = qwen.get_vision_position_ids(grid_thw, visual.spatial_merge_size, kwargs={})
    cu_seqlens, _ = qwen.get_vision_attention_seqlens(grid_thw, visual.config, kwargs={})
    window_index, cu_window_seqlens = qwen.get_vision_window_index(
        grid_thw, spatial_merge_size=visual.spatial_merge_size, window_size=visual.window_size,
        patch_size=visual.patch_size, kwargs={})
    n = pixel_values.shape[0]
    probe = torch.zeros(n, 1, dtype=pixel_values.dtype)
    cos, sin = (visual.permute_input_for_window_attn(t, window_index, seq_len=n)
                for t in visual.rotary_pos_emb(probe, position_ids))
    cu_window_seqlens = torch.unique_consecutive(torch.as_tensor(cu_window_seqlens, dtype=torch.int32))
    return {"pixel_values": pixel_values, "cos": cos, "sin": sin, "window_index": window_index.long(),
            "reverse_index": torch.argsort(window_index).long(), "full_mask": _block_mask(cu_seqlens, n),
            "window_mask": _block_mask(cu_window_seqlens, n)}


def load_tower(checkpoint: str):
    from transformers import AutoImageProcessor, Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(checkpoint, dtype=torch.float32).eval()
    return model.model.visual, AutoImageProcessor.from_pretrained(checkpoint)


def image_features(processor, size: tuple[int, int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    features = processor(images=[Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")], return_tensors="pt")
    return features["pixel_values"].float(), features["image_grid_thw"]


def export(visual, processor, out: Path, *, opset: int = 17) -> None:
    wrapper = ExportableVisionTower(visual).eval()
    pixels, grid = image_features(processor, (224, 168))
    inputs = graph_inputs(visual, pixels, grid)
    patches, groups = {0: "patches"}, {0: "groups"}
    axes = {"pixel_values": patches, "cos": patches, "sin": patches, "window_index": groups, "reverse_index": groups,
            "full_mask": {0: "patches", 1: "patches"}, "window_mask": {0: "patches", 1: "patches"},
            OUTPUT_NAME: groups}
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(wrapper, tuple(inputs[n] for n in INPUT_NAMES), str(out), input_names=list(INPUT_NAMES),
                          output_names=[OUTPUT_NAME], dynamic_axes=axes, opset_version=opset, dynamo=False)


@dataclass(frozen=True)
class Check:
    image_size: tuple[int, int]
    patches: int
    max_abs_diff: float
    max_abs_value: float


def check_against_pytorch(visual, processor, onnx_path: Path, sizes=((112, 112), (280, 196))) -> list[Check]:
    """Run the ONNX graph with onnxruntime at image sizes other than the export's; compare with the tower."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    checks = []
    for size in sizes:
        pixels, grid = image_features(processor, size, seed=size[0])
        with torch.no_grad():
            reference = visual(pixels, grid_thw=grid).pooler_output.numpy()
        feeds = {name: tensor.numpy() for name, tensor in graph_inputs(visual, pixels, grid).items()}
        (got,) = session.run([OUTPUT_NAME], feeds)
        checks.append(Check(size, int(pixels.shape[0]), float(np.abs(got - reference).max()),
                            float(np.abs(reference).max())))
    return checks


def pixel_limits(processor) -> tuple[int, int]:
    size = getattr(processor, "size", None) or {}
    low = size.get("shortest_edge") or getattr(processor, "min_pixels")
    high = size.get("longest_edge") or getattr(processor, "max_pixels")
    return int(low), int(high)


def trtexec_command(onnx_path: Path, processor, engine_path: Path, rope_dim: int) -> str:
    """The TensorRT build of the exported graph, with a patch-count profile from the image processor's limits."""
    patch = processor.patch_size * processor.patch_size
    min_pixels, max_pixels = pixel_limits(processor)
    unit = processor.merge_size ** 2
    low = max(min_pixels // patch // unit * unit, unit)
    high = max_pixels // patch // unit * unit
    opt = (low + high) // 2 // unit * unit

    def shapes(n: int) -> str:
        g = n // processor.merge_size ** 2
        d = 3 * processor.temporal_patch_size * patch
        return ",".join([f"pixel_values:{n}x{d}", f"cos:{n}x{rope_dim}", f"sin:{n}x{rope_dim}", f"window_index:{g}",
                         f"reverse_index:{g}", f"full_mask:{n}x{n}", f"window_mask:{n}x{n}"])

    return (f"trtexec --onnx={onnx_path} --saveEngine={engine_path} --bf16 "
            f"--minShapes={shapes(low)} --optShapes={shapes(opt)} --maxShapes={shapes(high)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="Hugging Face Qwen2.5-VL folder")
    parser.add_argument("--out", type=Path, default=Path(".cache/vision/qwen2_5_vl_vision.onnx"))
    parser.add_argument("--tolerance", type=float, default=1e-3, help="largest max-abs difference accepted")
    args = parser.parse_args(argv)
    visual, processor = load_tower(args.checkpoint)
    export(visual, processor, args.out)
    checks = check_against_pytorch(visual, processor, args.out)
    rope_dim = int(graph_inputs(visual, *image_features(processor, (56, 56)))["cos"].shape[-1])
    print(json.dumps({"onnx": str(args.out), "checks": [c.__dict__ for c in checks]}, indent=2))
    print("TensorRT build (experimental; TensorRT-LLM 1.2.1 has no Qwen2.5-VL engine flow):")
    print("  " + trtexec_command(args.out, processor, args.out.with_suffix(".plan"), rope_dim))
    worst = max(c.max_abs_diff for c in checks)
    if worst > args.tolerance:
        print(f"FAIL: max abs difference {worst:.2e} > {args.tolerance:.0e}", file=sys.stderr)
        return 1
    print(f"OK: max abs difference {worst:.2e} <= {args.tolerance:.0e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
