"""ONNX export of the Qwen2.5-VL vision tower, checked against PyTorch with onnxruntime (tiny checkpoint)."""

from pathlib import Path

import pytest

from build.tiny_checkpoints import ensure_tiny_checkpoints
from build.vision_export import (check_against_pytorch, export, graph_inputs, image_features, load_tower,
                                 trtexec_command)

CACHE = Path(__file__).resolve().parents[2] / ".cache"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    visual, processor = load_tower(str(ensure_tiny_checkpoints(CACHE / "checkpoints").vlm))
    path = tmp_path_factory.mktemp("onnx") / "vision.onnx"
    export(visual, processor, path)
    return visual, processor, path


def test_onnx_matches_pytorch_at_other_image_sizes(exported):
    visual, processor, path = exported
    checks = check_against_pytorch(visual, processor, path, sizes=((112, 84), (252, 196)))
    assert len({c.patches for c in checks}) == 2  # the patch count really varied
    for check in checks:
        assert check.max_abs_diff < 1e-4 * max(1.0, check.max_abs_value), check


def test_graph_has_dynamic_patch_axis(exported):
    import onnx

    _, _, path = exported
    model = onnx.load(str(path))
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert dims["pixel_values"][0] == "patches" and dims["full_mask"] == ["patches", "patches"]


def test_trtexec_command_covers_processor_range(exported):
    visual, processor, path = exported
    rope = int(graph_inputs(visual, *image_features(processor, (56, 56)))["cos"].shape[-1])
    command = trtexec_command(path, processor, path.with_suffix(".plan"), rope)
    assert command.startswith(f"trtexec --onnx={path}") and "--bf16" in command
    assert "--minShapes=pixel_values:16x1176" in command and "--maxShapes=pixel_values:256x1176" in command
