"""Serving as a fleet: replicas behind one balanced, retried client lose nothing when one is killed, one drains and
a fresh one joins; the gRPC port takes TLS and an inference key; `rmr serve` stops at any point of start-up."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.fleet import INFERENCE_KEY, RECOVERY_TARGET_S, SHARE_TOLERANCE, Fleet
from clients.connection import Connection
from clients.rerank_client import RerankClient, RerankError
from server.host.launcher import free_ports
from tests.e2e.conftest import CACHE, ROOT

pytestmark = pytest.mark.e2e
QUERY, CANDIDATES = "北京旅游攻略", [{"id": "a", "title": "故宫一日游"}, {"id": "b", "title": "长城徒步"}]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Three lean replicas with TLS on gRPC and the inference key, sharing a real redis-server; a fourth not started."""
    with Fleet(tmp_path_factory.mktemp("fleet"), CACHE, replicas=3, secure=True) as started:
        yield started


def _rerank(connection: Connection):
    with RerankClient(connection, timeout_s=60) as client:
        return client.rerank(QUERY, CANDIDATES)


def _one(fleet: Fleet, **options) -> Connection:
    """replica-2 alone (it lives through the fleet test), one attempt."""
    return fleet.connection([fleet.replicas[2].address], attempts=1) if not options else Connection(
        fleet.replicas[2].address, attempts=1, **options)


def test_the_right_ca_and_key_are_served(fleet):
    assert sorted(_rerank(_one(fleet)).ranked_ids) == ["a", "b"]


def test_a_plaintext_client_is_refused_on_the_tls_port(fleet):
    with pytest.raises(RerankError) as info:
        _rerank(_one(fleet, inference_key=INFERENCE_KEY))
    assert info.value.is_unavailable


def test_a_client_trusting_another_ca_refuses_the_server(fleet):
    with pytest.raises(RerankError) as info:
        _rerank(_one(fleet, ca=str(fleet.pki.other_ca), inference_key=INFERENCE_KEY))
    assert info.value.is_unavailable


@pytest.mark.parametrize("key", [None, "rmr-inference=wrong", "other-name=fleet-test-key"])
def test_a_missing_or_wrong_key_is_refused_naming_the_header(fleet, key):
    with pytest.raises(RerankError) as info:
        _rerank(_one(fleet, ca=str(fleet.pki.ca), inference_key=key))
    assert "triton-grpc-protocol-rmr-inference" in info.value.message, info.value
    assert info.value.is_key_refused and "--inference-key" in str(info.value)


def test_health_needs_no_key_so_probes_work(fleet):
    assert fleet.replicas[2].server.is_ready()


def test_a_replica_killed_one_drained_and_one_added_under_load_lose_no_request(fleet):
    """Through one balanced client over TLS with the key: SIGKILL replica 0, start replica 3, SIGTERM replica 1."""
    result = fleet.run(users=4, phase_s=6.0)
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


def _processes() -> list[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of every process, from /proc/<pid>/stat."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, ppid, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
            except (OSError, ValueError):
                continue
            found.append((int(entry.name), state, int(ppid), int(pgrp)))
    return found


def _children(pid: int) -> list[int]:
    return [child for child, _, parent, _ in _processes() if parent == pid]


def _group_alive(pgid: int, wait_s: float = 5.0) -> bool:
    """Whether a process of the group still runs (a zombie left for init to reap does not), after up to `wait_s`
    for SIGKILL to land."""
    deadline = time.monotonic() + wait_s
    while True:
        running = [pid for pid, state, _, group in _processes() if group == pgid and state != "Z"]
        if not running or time.monotonic() > deadline:
            return bool(running)
        time.sleep(0.1)


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
