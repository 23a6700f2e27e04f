"""A second server whose engines fail on purpose (engines/simulated.py): the pipeline still answers."""

from __future__ import annotations

import io

import pytest
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from build.profile import Checkpoints, resolve_checkpoints
from build.render import render
from clients.rerank_client import RerankClient
from ensemble import names
from server.host.launcher import TritonServer
from tests.e2e.conftest import CACHE

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    tiny = resolve_checkpoints("", "", "", str(CACHE))
    ckpts = Checkpoints(tiny.reranker, tiny.vlm, simulate="error", simulate_vlm="garbage", postrank=tiny.postrank)
    repository = render("cpu", tmp_path_factory.mktemp("faulty") / "repo", ckpts)
    # Only what these tests call: the BLS, the planner's ensemble (its steps load with it) and the engine slots.
    server = TritonServer.on_free_ports(repository, tmp_path_factory.mktemp("faulty-server"), admin_key="admin=s3cret",
                                        models=(*names.PIPELINE_MODELS, names.PLANNER.entry))
    with server:
        yield server


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 100, 0)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_engine_failure_gives_the_fallback_ranking_with_its_reason(faulty):
    with RerankClient(faulty.options.grpc_url, timeout_s=60) as client:
        result = client.rerank("Beijing travel guide", [
            {"id": "pasta", "title": "Pasta recipe"}, {"id": "guide", "title": "Beijing travel guide 2025"}],
            cover_images=[jpeg(), jpeg()])
    response = result.response
    assert result.ranked_ids == ["guide", "pasta"]
    assert response["fallback"] is True and "reranker failed" in response["fallback_reason"]
    # the VLM wrote garbage: grades stay unknown, never invented
    for grade in response["cover_grades"]:
        assert grade["relevance"] is None and grade["quality"] is None
        assert grade["source"] == {"relevance": "model_unusable", "quality": "model_unusable"}


def test_a_failing_post_rank_keeps_the_ranking_and_says_why(faulty):
    candidates = [{"id": "pasta", "title": "Pasta recipe", "features": {"category": "food"}},
                  {"id": "guide", "title": "Beijing travel guide 2025", "features": {"category": "travel"}}]
    with RerankClient(faulty.options.grpc_url, timeout_s=60) as client:
        result = client.rerank("Beijing travel guide", candidates, options={"post_rank": True})
    post_rank = result.response["post_rank"]
    assert result.ranked_ids == ["guide", "pasta"] and result.response["ranked_by"] == "fallback"
    assert not post_rank["applied"] and post_rank["error"].startswith("INTERNAL: ")


def test_planner_engine_failure_is_an_internal_error_not_a_crash(faulty):
    from clients.rerank_client import RerankError

    with RerankClient(faulty.options.grpc_url, timeout_s=60) as client:
        with pytest.raises(RerankError) as info:
            client.plan("weather today")
        assert "INTERNAL" in info.value.status
        assert "reranker_llm: internal error (SimulatedEngineFailure); see the server log" in info.value.message
        assert "Traceback" not in info.value.message  # the traceback goes to the server log, not the client
        assert client.rerank("q", [{"id": "a", "title": "t"}]).fallback


def test_admin_endpoints_need_the_key(faulty):
    client = grpcclient.InferenceServerClient(faulty.options.grpc_url)
    with pytest.raises(InferenceServerException):
        client.get_model_repository_index()
    index = client.get_model_repository_index(headers={"triton-grpc-protocol-admin": "s3cret"})
    assert any(model.name == "rich_media_reranker" for model in index.models)
    assert client.is_server_ready()  # health stays open
