"""One real tritonserver for the whole e2e session, on free loopback ports, with the tiny checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from build.profile import resolve_checkpoints
from build.render import render
from clients.rerank_client import RerankClient
from clients.samples import load_sample, split_sample
from server.host.launcher import TritonServer

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("RMR_CACHE", ROOT / ".cache"))


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    checkout = os.environ.get("RMR_E2E_CHECKOUT")
    if checkout:  # another revision's server under these tests: does a new test fail on the old code?
        from bench.runner import start_checkout_server

        triton = start_checkout_server(Path(checkout), CACHE, "", tmp_path_factory.mktemp("checkout"))
    else:
        ckpts = resolve_checkpoints("", "", "", str(CACHE))
        repository = render("cpu", tmp_path_factory.mktemp("repo") / "model_repository", ckpts)
        triton = TritonServer.on_free_ports(repository, tmp_path_factory.mktemp("server"))
    with triton:
        yield triton
    assert triton.process.returncode == 0, triton.log_tail()


@pytest.fixture(scope="session")
def grpc_url(server) -> str:
    return server.options.grpc_url


@pytest.fixture
def client(grpc_url):
    with RerankClient(grpc_url, timeout_s=120) as c:
        yield c


@pytest.fixture(scope="session")
def sample():
    data = load_sample()
    candidates, covers = split_sample(data)
    return data, candidates, covers
