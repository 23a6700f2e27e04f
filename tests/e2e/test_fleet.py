"""Serving as a fleet: replicas behind one balanced, retried client lose nothing when one is killed, one drains and
a fresh one joins; the gRPC port takes TLS and an inference key; `rmr serve` stops at any point of start-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.fleet import REPLICA_MODELS, RECOVERY_TARGET_S, SHARE_TOLERANCE, run_fleet
from build.profile import Checkpoints, resolve_checkpoints
from build.render import render
from clients.connection import Connection
from clients.rerank_client import RerankClient, RerankError
from server.host.launcher import ServerTls, TritonServer, free_ports
from tests.e2e.conftest import CACHE, ROOT
from tests.tls import make_pki

pytestmark = pytest.mark.e2e
KEY = "rmr-inference=s3cret"
QUERY, CANDIDATES = "北京旅游攻略", [{"id": "a", "title": "故宫一日游"}, {"id": "b", "title": "长城徒步"}]


def test_a_replica_killed_one_drained_and_one_added_under_load_lose_no_request(tmp_path):
    result = run_fleet(tmp_path, CACHE, replicas=3, users=4, phase_s=6.0)
    print(result.table())
    assert result.failed == 0, [p.failed[:3] for p in result.phases] + result.failures_outside_phases[:3]
    for phase in result.phases:
        assert phase.answered > 0, phase.name
        if len(phase.shares) >= 2:
            assert phase.share_spread() <= SHARE_TOLERANCE, (phase.name, phase.shares)
        assert phase.recovery_s is not None and phase.recovery_s <= RECOVERY_TARGET_S, (phase.name, phase.recovery_s)
    killed, fresh, drained = result.phases[1], result.phases[2], result.phases[3]
    assert "replica-0" not in killed.shares and set(fresh.shares) == {"replica-1", "replica-2", "replica-3"}
    assert "replica-1" not in drained.shares or drained.shares["replica-1"] < fresh.shares["replica-1"]
    # The client reconnects within max_reconnect_backoff (1 s) of a replica listening: its share comes at once.
    assert result.fresh_first_request_s is not None and result.fresh_first_request_s <= 3.0


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    """A lean replica with TLS on gRPC and the inference key."""
    work = tmp_path_factory.mktemp("secure")
    pki = make_pki(work / "pki")
    ckpts = resolve_checkpoints("", "", "", str(CACHE))
    repository = render("cpu", work / "model_repository", Checkpoints(ckpts.reranker, ckpts.vlm, simulate="valid"))
    server = TritonServer.on_free_ports(repository, work / "server", models=REPLICA_MODELS, inference_key=KEY,
                                        tls=ServerTls(pki.server_cert, pki.server_key))
    with server:
        yield server, pki


def _rerank(connection: Connection):
    with RerankClient(connection, timeout_s=60) as client:
        return client.rerank(QUERY, CANDIDATES)


def test_the_right_ca_and_key_are_served(secure):
    server, pki = secure
    result = _rerank(Connection(server.options.grpc_url, ca=str(pki.ca), inference_key=KEY))
    assert sorted(result.ranked_ids) == ["a", "b"]


def test_a_plaintext_client_is_refused_on_the_tls_port(secure):
    server, _ = secure
    with pytest.raises(RerankError) as info:
        _rerank(Connection(server.options.grpc_url, attempts=1, inference_key=KEY))
    assert info.value.is_unavailable


def test_a_client_trusting_another_ca_refuses_the_server(secure):
    server, pki = secure
    with pytest.raises(RerankError) as info:
        _rerank(Connection(server.options.grpc_url, attempts=1, ca=str(pki.other_ca), inference_key=KEY))
    assert info.value.is_unavailable


@pytest.mark.parametrize("key", [None, "rmr-inference=wrong", "other-name=s3cret"])
def test_a_missing_or_wrong_key_is_refused_naming_the_header(secure, key):
    server, pki = secure
    with pytest.raises(RerankError) as info:
        _rerank(Connection(server.options.grpc_url, attempts=1, ca=str(pki.ca), inference_key=key))
    assert "triton-grpc-protocol-rmr-inference" in info.value.message, info.value
    assert not info.value.is_invalid_argument


def test_health_needs_no_key_so_probes_work(secure):
    server, _ = secure
    assert server.is_ready()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_rmr_serve_stops_promptly_during_start_up_and_leaves_no_process(tmp_path, signum):
    http, grpc_port, metrics = free_ports(3)
    serve = subprocess.Popen([sys.executable, "-m", "server", "--cache", str(CACHE), "--http-port", str(http),
                              "--grpc-port", str(grpc_port), "--metrics-port", str(metrics)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        triton = []
        while not triton and time.monotonic() < deadline and serve.poll() is None:
            triton = _children(serve.pid)
            time.sleep(0.2)
        assert triton, "tritonserver never started"
        time.sleep(3)  # its model stubs are loading now
        assert _children(triton[0]), "no model stub was started yet"
        serve.send_signal(signum)
        output, _ = serve.communicate(timeout=20)
    finally:
        if serve.poll() is None:
            serve.kill()
    assert serve.returncode == 0, output
    assert "stopping during start-up" in output
    assert not _group_alive(triton[0]), "tritonserver or a model stub outlived rmr serve"
