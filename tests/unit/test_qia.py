"""The query-instructed adapter three ways: the NumPy forward the pre step runs, the torch module a trainer uses, and
its ONNX export; all one computation."""

from pathlib import Path

import numpy as np
import pytest
import torch

from build.qia import ONNX_INPUTS, export_onnx, load
from build.tiny_checkpoints import ensure_tiny_checkpoints
from clients.samples import SAMPLE_USER, with_features
from ensemble.postrank.checkpoint import PostRanker
from ensemble.postrank.encoder import encode, query_vector
from ensemble.postrank.features import Domain, encoder_inputs, query_inputs

CACHE = Path(__file__).resolve().parents[2] / ".cache"


@pytest.fixture(scope="module")
def inputs():
    tiny = ensure_tiny_checkpoints(CACHE / "checkpoints")
    ranker = PostRanker.load(tiny.postrank, hidden_size=64)
    schema = ranker.schema
    items = with_features([{"title": f"great wall sunrise tour {i}"} for i in range(6)], seed=3)
    user = encoder_inputs(schema, Domain.USER, [("user", SAMPLE_USER)])
    item = encoder_inputs(schema, Domain.ITEM, [(f"c{i}", c["features"]) for i, c in enumerate(items)])
    query = query_inputs(schema, "beijing great wall in winter")
    return tiny, ranker, query, user, item


def test_numpy_forward_equals_the_torch_module(inputs):
    tiny, ranker, (qi, qw), user, item = inputs
    q = query_vector(ranker.weights, qi, qw)
    want_user, want_item = encode(ranker.weights, Domain.USER, q, user), encode(ranker.weights, Domain.ITEM, q, item)
    module, _ = load(tiny.postrank)
    with torch.no_grad():
        got_user, got_item = module(*(torch.from_numpy(a) for a in (qi, qw, user.indices, user.weights, user.values,
                                                                    item.indices, item.weights, item.values)))
    assert np.allclose(got_user.numpy(), want_user, atol=1e-5) and np.allclose(got_item.numpy(), want_item, atol=1e-5)
    assert want_item.shape == (6, 64) and len({row.tobytes() for row in want_item}) == 6


def test_the_onnx_export_runs_in_onnxruntime_with_any_number_of_items(inputs, tmp_path):
    import onnxruntime

    tiny, ranker, (qi, qw), user, item = inputs
    module, schema = load(tiny.postrank)
    session = onnxruntime.InferenceSession(str(export_onnx(module, schema, tmp_path / "qia.onnx")))
    q = query_vector(ranker.weights, qi, qw)
    feeds = dict(zip(ONNX_INPUTS, (qi, qw, user.indices, user.weights, user.values, item.indices, item.weights,
                                   item.values)))
    got_user, got_item = session.run(None, feeds)
    assert np.allclose(got_item, encode(ranker.weights, Domain.ITEM, q, item), atol=1e-4)
    assert np.allclose(got_user, encode(ranker.weights, Domain.USER, q, user), atol=1e-4)
