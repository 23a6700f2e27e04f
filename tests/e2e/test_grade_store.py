"""Cover grades shared through a real redis-server by a real tritonserver: written once, read by the next
request, bypassed while Redis is away (no request fails), read again when it is back; and `rmr covers`,
killed halfway and run again, leaves every image graded exactly once in the store."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
import redis
from PIL import Image

from build.profile import resolve_checkpoints
from build.render import render
from clients.rerank_client import RerankClient
from ensemble import names
from ensemble.names import STORE_URL_ENV, Metric
from server.host.launcher import TritonServer
from tests.e2e.conftest import CACHE, ROOT
from store.local_redis import RedisServer

pytestmark = pytest.mark.e2e


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (seed * 37 % 256, seed * 91 % 256, seed * 13 % 256)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def redis_store(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def store_server(redis_store, tmp_path_factory):
    """The LRU is off, so that every lookup goes to the store, as a fresh instance or replica's would."""
    ckpts = resolve_checkpoints("", "", "", str(CACHE))
    repository = render("cpu", tmp_path_factory.mktemp("repo") / "model_repository", ckpts,
                        overrides={"pipeline": {"cover_cache": {"enabled": False}}})
    # Only what these tests call: the BLS, the cover_evaluator entry and the engine slots (a lean replica).
    triton = TritonServer.on_free_ports(repository, tmp_path_factory.mktemp("server"),
                                        models=(*names.PIPELINE_MODELS, names.COVER.entry))
    os.environ[STORE_URL_ENV] = redis_store.url  # the server's environment is taken when it starts
    try:
        triton.__enter__()
    finally:
        del os.environ[STORE_URL_ENV]
    try:
        yield triton
    finally:
        triton.__exit__(None, None, None)


def rerank(server, covers: list[bytes], query="北京") -> dict:
    candidates = [{"id": str(i), "title": "t"} for i in range(len(covers))]
    with RerankClient(server.options.grpc_url, timeout_s=120) as client:
        return client.rerank(query, candidates, cover_images=covers).response


def sources(response) -> list[tuple[str, str]]:
    return [(g["source"]["relevance"], g["source"]["quality"]) for g in response["cover_grades"]]


def metric(server, name: str, **labels) -> float:
    text = urllib.request.urlopen(server.options.metrics_url, timeout=10).read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and all(part in line for part in want.split(",")))


def quality_keys(redis_store) -> int:
    return sum(1 for _ in redis.Redis.from_url(redis_store.url).scan_iter("rmr:grade:*:quality:*"))


def grade_keys_reach(redis_store, count: int) -> list[str]:
    """The grade keys once `count` are there: online write-backs land just after their request."""
    client = redis.Redis.from_url(redis_store.url)
    deadline = time.monotonic() + 10
    while True:
        keys = sorted(k.decode() for k in client.scan_iter("rmr:grade:*"))
        if len(keys) >= count or time.monotonic() > deadline:
            return keys
        time.sleep(0.02)


def test_grades_go_to_redis_under_versioned_keys_and_come_back(store_server, redis_store):
    covers = [jpeg(i) for i in range(3)]
    assert sources(rerank(store_server, covers)) == [("model", "model")] * 3
    keys = grade_keys_reach(redis_store, 6)
    assert len(keys) == 6 and all(len(k.split(":")) in (5, 6) for k in keys)
    again = rerank(store_server, covers)
    assert sources(again) == [("store", "store")] * 3 and again["cover_store"]["hits"] == 6
    other_query = rerank(store_server, covers, query="上海")
    assert sources(other_query) == [("model", "store")] * 3  # quality is the image's alone


def test_without_redis_no_request_fails_and_hits_resume_when_it_is_back(store_server, redis_store):
    redis_store.stop()
    try:
        for seed in range(10, 14):
            response = rerank(store_server, [jpeg(seed)])
            assert sources(response) == [("model", "model")] and response["cover_store"]["written"] == 0
        time.sleep(0.6)  # the BLS publishes its counters within 0.5 s
        assert metric(store_server, Metric.STORE_CALLS, result="error") >= 1
        assert metric(store_server, Metric.STORE_CALLS, result="bypassed") >= 1
    finally:
        redis_store.start()  # the same port, empty (no persistence)
    time.sleep(1.2)  # past [cover_store] retry_after_s
    cover = [jpeg(20)]
    rerank(store_server, cover)
    grade_keys_reach(redis_store, 2)
    assert sources(rerank(store_server, cover)) == [("store", "store")]


def run_covers(server, folder, *, wait: bool = True):
    command = [sys.executable, "-m", "clients.covers", str(folder), "--url", server.options.grpc_url, "--batch", "3",
               "--quiet"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        out, err = process.communicate(timeout=600)
        return process.returncode, out + err
    return process


def test_index_command_killed_halfway_leaves_each_image_once_and_a_rerun_completes(store_server, redis_store,
                                                                                  tmp_path):
    folder = tmp_path / "covers"
    folder.mkdir()
    for i in range(18):
        (folder / f"c{i:02}.jpg").write_bytes(jpeg(100 + i))
    (folder / "copy.jpg").write_bytes(jpeg(100))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    before = quality_keys(redis_store)
    process = run_covers(store_server, folder, wait=False)
    deadline = time.monotonic() + 300
    while quality_keys(redis_store) - before < 6 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    killed_at = quality_keys(redis_store) - before
    assert 0 < killed_at < 18, killed_at
    code, out = run_covers(store_server, folder)
    assert code == 0, out
    assert quality_keys(redis_store) - before == 18  # every distinct readable image, once
    graded, stored = map(int, re.search(r"(\d+) graded, (\d+) already stored", out).groups())
    # The batch in flight at the kill may still have been stored by the server: stored >= killed_at.
    assert graded + stored == 18 and stored >= killed_at, out
    assert "1 duplicates of another" in out and "1 unreadable" in out and "broken.png" in out
    code, out = run_covers(store_server, folder)
    assert code == 0 and "0 graded, 18 already stored" in out, out


def test_direct_cover_evaluator_calls_read_and_fill_the_same_store(store_server, redis_store):
    """A grade a direct call computed is served from the store to the next caller, with no VLM call."""
    import tritonclient.grpc as grpcclient


    raw = grpcclient.InferenceServerClient(store_server.options.grpc_url)

    def vlm_calls() -> int:
        stats = raw.get_inference_statistics(names.VLM_ENGINE).model_stats[0]
        return stats.inference_stats.success.count

    image = jpeg(300)
    with RerankClient(store_server.options.grpc_url, timeout_s=120) as client:
        first = client.infer(names.COVER.entry, {"query": "北京", "image": image, "task": "quality"})
        before = vlm_calls()
        again = client.infer(names.COVER.entry, {"query": "上海", "image": image, "task": "quality"})
        response = rerank(store_server, [image])
    assert int(first["grade"][0]) in (1, 2, 3, 4)
    assert int(again["grade"][0]) == int(first["grade"][0]) and again["reasoning"][0] == b""
    assert vlm_calls() == before + 1  # the re-rank graded relevance; quality came from the store
    assert response["cover_grades"][0]["source"]["quality"] == "store"
