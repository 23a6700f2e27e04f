"""Whatever a client sends, the server answers with a result or INVALID_ARGUMENT naming the field, and stays up."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.e2e


def png(size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (9, 9, 9)).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb() -> bytes:
    """A valid PNG header declaring 20000 x 20000 pixels (400 M), a decompression bomb."""
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, format="PNG")
    return buffer.getvalue()


def send(url: str, body: bytes, images: list[bytes] | None = None, model: str = "rich_media_reranker"):
    client = grpcclient.InferenceServerClient(url)
    inputs = [grpcclient.InferInput("request", [1, 1], "BYTES")]
    inputs[0].set_data_from_numpy(np.array([[body]], dtype=np.object_))
    if images is not None:
        tensor = grpcclient.InferInput("cover_images", [1, len(images)], "BYTES")
        tensor.set_data_from_numpy(np.array([images], dtype=np.object_))
        inputs.append(tensor)
    return client.infer(model, inputs, client_timeout=120)


def body(**changes) -> bytes:
    data = {"query": "北京", "candidates": [{"id": "a", "title": "t"}, {"id": "b", "title": "u"}]}
    data.update(changes)
    return json.dumps(data, ensure_ascii=False).encode()


CATALOGUE = [
    (b"{", None, "request must be valid JSON"),
    (b'"just a string"', None, "request must be an object"),
    (body(query=["list"]), None, "query must be a string"),
    (body(query="q" * 600), None, "query must be at most 512 characters"),
    (body(query=""), None, "query must not be empty"),
    (body(candidates=[{"id": "a", "title": "t"}, {"id": "a", "title": "u"}]), None, "candidates[1].id must be unique"),
    (body(candidates=[{"title": "t"}]), None, "candidates[0].id is required"),
    (body(candidates=[{"id": str(i), "title": "t"} for i in range(201)]), None, "candidates must hold at most 200"),
    (body(candidates=[{"id": "a", "title": "t", "content": "x" * 20001}]), None, "candidates[0].content must be at most"),
    (body(candidates=[{"id": "a", "title": "t", "click_through_rate": 1.5}]), None,
     "candidates[0].click_through_rate must be <= 1"),
    (b'{"query": "q", "candidates": [{"id": "a", "title": "t", "completion_rate": NaN}]}', None,
     "candidates[0].completion_rate must be a finite number"),
    (b'{"query": "q", "candidates": [{"id": "a", "title": "t", "completion_rate": Infinity}]}', None,
     "candidates[0].completion_rate must be a finite number"),
    (body(candidates=[{"id": "a", "title": "t", "publish_time": "31/02/2025"}]), None,
     "candidates[0].publish_time must be an ISO 8601 time"),
    (body(), [png()], "cover_images must hold one element per candidate"),
    (body(), [png(), b"\x89PNG\r\n\x1a\n truncated"], "cover_images[1]"),
    (body(), [png()[:-20], png()], "cover_images[0] is not a readable image"),
    (body(), [png(), b"<html>not an image</html>"], "cover_images[1] must be an encoded image"),
    (body(), [png(), png((2, 2))], "cover_images[1] sides must be within"),
    (b"\xff\xfe\x00bad utf8", None, "request must be valid UTF-8"),
]


@pytest.mark.parametrize("raw,images,message", CATALOGUE, ids=[c[2][:40] for c in CATALOGUE])
def test_catalogue_is_invalid_argument_and_server_stays_ready(grpc_url, raw, images, message):
    with pytest.raises(InferenceServerException) as info:
        send(grpc_url, raw, images)
    assert "INVALID_ARGUMENT" in str(info.value.status()), info.value
    assert message in info.value.message()
    client = grpcclient.InferenceServerClient(grpc_url)
    assert client.is_server_ready()
    result = send(grpc_url, body())
    assert sorted(v.decode() for v in result.as_numpy("ranked_ids").reshape(-1)) == ["a", "b"]


def test_decompression_bomb_is_refused_before_decoding(grpc_url):
    with pytest.raises(InferenceServerException) as info:
        send(grpc_url, body(), [png(), bomb()])
    assert "INVALID_ARGUMENT" in str(info.value.status()) and "cover_images[1]" in info.value.message()


def test_wrong_shapes_and_unknown_tensors_are_refused(grpc_url):
    client = grpcclient.InferenceServerClient(grpc_url)
    two_rows = grpcclient.InferInput("request", [2, 1], "BYTES")
    two_rows.set_data_from_numpy(np.array([[body()], [body()]], dtype=np.object_))
    with pytest.raises(InferenceServerException) as info:
        client.infer("rich_media_reranker", [two_rows])
    assert "INVALID_ARGUMENT" in str(info.value.status()) and "batch size 1" in info.value.message()
    stray = grpcclient.InferInput("surprise", [1, 1], "BYTES")
    stray.set_data_from_numpy(np.array([[b"x"]], dtype=np.object_))
    with pytest.raises(InferenceServerException):
        client.infer("rich_media_reranker", [stray])
    assert client.is_server_ready()


_values = st.recursive(st.none() | st.booleans() | st.integers(-5, 10 ** 12) | st.floats() | st.text(max_size=30),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                       max_leaves=12)
_candidate = st.fixed_dictionaries({"id": st.one_of(st.text(max_size=6), _values), "title": st.one_of(st.text(max_size=20), _values)},
                                   optional={"click_through_rate": _values, "publish_time": _values,
                                             "cover_quality": _values, "intent_dimensions": _values})


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.binary(max_size=60),
                 st.fixed_dictionaries({"query": _values, "candidates": st.lists(_candidate, max_size=4)}).map(
                     lambda d: json.dumps(d).encode())))
def test_live_fuzz_answers_are_results_or_clean_errors(grpc_url, raw):
    try:
        result = send(grpc_url, raw)
    except InferenceServerException as error:
        assert "INVALID_ARGUMENT" in str(error.status()), error
        return
    response = json.loads(result.as_numpy("response").reshape(-1)[0])
    ids = [c["id"] for c in json.loads(raw)["candidates"]]
    assert sorted(response["ranked_ids"]) == sorted(ids)
