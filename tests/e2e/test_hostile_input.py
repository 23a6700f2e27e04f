"""Hostile input over gRPC, class by class, then fuzzed across every entry point: the answer is a result or
INVALID_ARGUMENT with a short message naming a field, the server stays ready, and its memory stays bounded."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from tritonclient.utils import InferenceServerException

from build.render import step_models
from clients.rerank_client import entry_interface
from ensemble import names
from ensemble import tensors as T
from ensemble.config import PipelineConfig
from ensemble.tensors import TensorSpec
from server.host.launcher import process_tree_rss_mb

pytestmark = pytest.mark.e2e
LIMITS = PipelineConfig.load().limits
MEMORY_GROWTH_MB = 1500
"""The stated bound: hostile requests may not make the server (every process) hold more than this."""


def jpeg(size=(64, 48), colour=(9, 90, 200), quality=90) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def tensor(name: str, array: np.ndarray, dtype: str) -> grpcclient.InferInput:
    t = grpcclient.InferInput(name, list(array.shape), dtype)
    t.set_data_from_numpy(array)
    return t


def call(url: str, model: str, inputs: list[grpcclient.InferInput]):
    return grpcclient.InferenceServerClient(url).infer(model, inputs, client_timeout=120)


def refusal(url: str, model: str, inputs) -> str:
    with pytest.raises(InferenceServerException) as info:
        call(url, model, inputs)
    assert "INVALID_ARGUMENT" in str(info.value.status()), info.value
    message = info.value.message()
    assert len(message.encode()) < 1024, message[:200]
    assert grpcclient.InferenceServerClient(url).is_server_ready()
    return re.sub(r"^in ensemble '[^']+', ", "", message)  # Triton's prefix for an ensemble's step


def request(body: bytes, images: list[bytes] | None = None) -> list[grpcclient.InferInput]:
    inputs = [tensor("request", np.array([[body]], dtype=np.object_), "BYTES")]
    if images is not None:
        inputs.append(tensor("cover_images", np.array([images], dtype=np.object_), "BYTES"))
    return inputs


def body(candidates=None, **extra) -> bytes:
    return json.dumps({"query": "北京", "candidates": candidates or [{"id": "a", "title": "t"}], **extra}).encode()


def memory_mb(server) -> float:
    return sum(process_tree_rss_mb(server.process.pid).values())


def test_covers_at_the_pixel_limit_cost_bounded_memory(server):
    """Class 1: 36 M-pixel covers (a few KB each) are decoded at the vision model's size; a request whose covers
    together pass the per-request pixel budget is refused from their headers."""
    big = [jpeg((6000, 6000), (40 * i, 90, 200), quality=30) for i in range(3)]
    url = server.options.grpc_url
    before = memory_mb(server)
    candidates = [{"id": str(i), "title": "t"} for i in range(3)]
    for _ in range(2):
        result = call(url, names.RICH_MEDIA_RERANKER, request(body(candidates[:2]), big[:2]))
        assert len(result.as_numpy("ranked_ids").reshape(-1)) == 2
    grown = memory_mb(server) - before
    assert grown < 600, f"two 72 M-pixel requests left the server {grown:.0f} MB larger"
    message = refusal(url, names.RICH_MEDIA_RERANKER, request(body(candidates), big))
    assert message.startswith(f"cover_images must hold at most {LIMITS.max_request_pixels} pixels together")


def test_an_endless_field_name_is_invalid_argument_with_a_short_message(grpc_url):
    """Class 2: not RESOURCE_EXHAUSTED from gRPC's metadata cap."""
    raw = json.dumps({"query": "q", "candidates": [{"id": "a", "title": "t"}], "x" * 20_000: 1}).encode()
    message = refusal(grpc_url, names.RICH_MEDIA_RERANKER, request(raw))
    assert "is not a known field" in message


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", 4e10])
def test_extreme_times_are_invalid_argument(grpc_url, value):
    """Classes 3 and 9: never INTERNAL, never a millisecond guess."""
    raw = body([{"id": "a", "title": "t", "publish_time": value}])
    for model in (names.RICH_MEDIA_RERANKER, names.RERANK.entry):
        assert refusal(grpc_url, model, request(raw)).startswith("candidates[0].publish_time must be")


def test_oversized_bodies_are_refused_before_parsing(grpc_url):
    """Class 4: a body past the byte limit, and a large one with too many candidates."""
    huge = b'{"query": "q", "candidates": [' + b'{"id": "a", "title": ""},' * 400_000 + b'{"id": "b"}]}'
    assert refusal(grpc_url, names.RICH_MEDIA_RERANKER, request(huge)).startswith(
        f"request must be at most {LIMITS.max_request_bytes} bytes")
    many = body([{"id": str(i), "title": ""} for i in range(100_000)])
    for model in (names.RICH_MEDIA_RERANKER, names.RERANK.entry):
        refused = refusal(grpc_url, model, request(many))
        assert refused.startswith(f"candidates must hold at most {LIMITS.max_candidates} items")


def test_batches_to_the_reranker_ensemble_are_answered_row_by_row(grpc_url):
    """Class 5: a [3, 1] batch with different candidate counts; a [3, 2] one is a clean refusal."""
    bodies = [body([{"id": f"{row}-{i}", "title": "t"} for i in range(n)]) for row, n in enumerate((1, 3, 2))]
    result = call(grpc_url, names.RERANK.entry, [tensor("request", np.array(bodies, dtype=np.object_).reshape(3, 1),
                                                        "BYTES")])
    ranked = result.as_numpy("ranked_ids")
    for row, n in enumerate((1, 3, 2)):
        ids = [v.decode() for v in ranked[row] if v]
        assert sorted(ids) == [f"{row}-{i}" for i in range(n)]
    wide = np.array([[b, b] for b in bodies], dtype=np.object_)
    assert "request" in refusal(grpc_url, names.RERANK.entry, [tensor("request", wide, "BYTES")])


def test_engine_slots_enforce_the_entry_points_limits(grpc_url):
    """Classes 6 and 7: a direct call to the VLM slot with a 49 M-pixel image, or asking more tokens than the
    limit, is refused naming the tensor and the limit."""
    ids = np.array([[151644, 151655, 151645]], dtype=np.int32)  # <|im_start|> <|image_pad|> <|im_end|>
    base = [tensor("input_ids", ids, "INT32"), tensor("input_lengths", np.array([[3]], np.int32), "INT32")]
    huge = np.array([[jpeg((7000, 7000), quality=20)]], dtype=np.object_)
    message = refusal(grpc_url, names.VLM_ENGINE, base + [tensor("request_output_len", np.array([[4]], np.int32), "INT32"),
                                                         tensor("image", huge, "BYTES")])
    assert message.startswith(f"image must have at most {LIMITS.max_image_pixels} pixels")
    long = tensor("request_output_len", np.array([[LIMITS.max_new_tokens + 1]], np.int32), "INT32")
    assert "limits.max_new_tokens" in refusal(grpc_url, names.LLM_ENGINE, base + [long])
    raw = body(options={"max_new_tokens": 20_000})
    assert refusal(grpc_url, names.RICH_MEDIA_RERANKER, request(raw)).startswith(
        f"options.max_new_tokens must be <= {LIMITS.max_new_tokens}")


# --- fuzz across every entry point ------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10 ** 15, 10 ** 15) | st.floats() | st.text(max_size=40)
    | st.sampled_from(["0001-01-01T00:00:00+14:00", "<|im_end|>", "x" * 5000, "9" * 400]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=16)
_candidate = st.fixed_dictionaries(
    {"id": st.one_of(st.text(min_size=1, max_size=8), _json_values), "title": st.one_of(st.text(max_size=30), _json_values)},
    optional={"content": _json_values, "publish_time": _json_values, "click_through_rate": _json_values,
              "cover_relevance": _json_values, "intent_dimensions": _json_values})
_request_json = st.fixed_dictionaries({"query": _json_values, "candidates": st.lists(_candidate, max_size=5)},
                                      optional={"options": _json_values}).map(lambda d: json.dumps(d).encode())
_bytes = st.one_of(st.binary(max_size=64), _request_json, st.just(jpeg()), st.sampled_from([b"relevance", b"quality"]),
                   st.text(max_size=40).map(str.encode))


MODELS = {**{name: entry_interface(name) for name in names.ENTRY_POINTS},
          **{name: interface for name, (_, interface) in step_models().items()},
          names.LLM_ENGINE: T.TORCH_LLM_SLOT, names.VLM_ENGINE: T.VLM_SLOT}
"""Every model a client can reach: the entry points, and the step models and engine slots behind them."""


@st.composite
def _call(draw):
    model = draw(st.sampled_from(sorted(MODELS)))
    inputs = []
    batch = draw(st.sampled_from([1, 1, 1, 2]))
    for spec in MODELS[model].inputs:
        if draw(st.integers(0, 9)) == 0 and spec.optional is False or (spec.optional and draw(st.booleans())):
            continue  # a required input left out now and then
        inputs.append(draw(_tensor(spec, batch)))
    return model, inputs


_ints = st.one_of(st.integers(0, 64), st.integers(151640, 151660), st.integers(-2 ** 31, 2 ** 31 - 1))


@st.composite
def _tensor(draw, spec: TensorSpec, batch: int):
    shape = (batch, *(1 if d == 1 and draw(st.integers(0, 5)) else draw(st.integers(0, 3)) for d in spec.dims))
    size = int(np.prod(shape))
    if spec.wire_dtype == "BYTES" and draw(st.integers(0, 9)):
        values = draw(st.lists(_bytes, min_size=size, max_size=size))
        return tensor(spec.name, np.array(values, dtype=np.object_).reshape(shape), "BYTES")
    values = draw(st.lists(_ints, min_size=size, max_size=size))
    return tensor(spec.name, np.array(values, dtype=np.int32).reshape(shape), "INT32")


FIELD_WORDS = ("request", "query", "session", "image", "task", "cover_images", "candidates", "options", "input")


@pytest.fixture(scope="module")
def memory_before_fuzz(server) -> float:
    """After one call to each entry point, so that start-up allocations (models warmed, caches made) count
    before, not against the bound."""
    url = server.options.grpc_url
    call(url, names.RICH_MEDIA_RERANKER, request(body(), [jpeg()]))
    call(url, names.RERANK.entry, request(body()))
    call(url, names.PLANNER.entry, [tensor("query", np.array([[b"q"]], dtype=np.object_), "BYTES")])
    call(url, names.COVER.entry, [tensor(n, np.array([[v]], dtype=np.object_), "BYTES")
                                  for n, v in (("query", b"q"), ("image", jpeg()), ("task", b"quality"))])
    return memory_mb(server)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(_call())
def test_fuzzed_calls_are_results_or_clean_refusals_naming_a_field(server, memory_before_fuzz, call_args):
    model, inputs = call_args
    url = server.options.grpc_url
    try:
        call(url, model, inputs)
    except InferenceServerException as error:
        assert "INVALID_ARGUMENT" in str(error.status()), (model, error)
        message = error.message()
        assert len(message.encode()) < 1024, message[:200]
        assert any(word in message for word in FIELD_WORDS + tuple(s.name for s in MODELS[model].inputs)), message
    client = grpcclient.InferenceServerClient(url)
    assert client.is_server_ready()


def test_fuzzing_left_the_server_within_its_memory_bound(server, memory_before_fuzz):
    """Runs after the fuzz (file order): the whole process tree against its size before it."""
    grown = memory_mb(server) - memory_before_fuzz
    assert grown < MEMORY_GROWTH_MB, f"{grown:.0f} MB"
