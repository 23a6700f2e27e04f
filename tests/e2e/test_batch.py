"""The T+1 job against the real server on a local Ray: a day's queries through the chain into the result store,
looked up with one GET; rerun, it skips what is stored; a dead endpoint first in the list costs nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from clients.batch.results import cached_ranking
from clients.batch.sample import make_sample_day
from clients.rerank_client import RerankClient
from store import open_store
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e


def batch(tmp_path, log, corpus, endpoints: str) -> tuple[int, str]:
    command = [sys.executable, "-m", "clients.cli", "batch", "--queries", str(log), "--corpus", str(corpus),
               "--store", f"sqlite:///{tmp_path}/results.sqlite", "--server", endpoints, "--num-cpus", "2",
               "--dead-letters", str(tmp_path / "dead.jsonl"), "--backoff", "60", "--quiet"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr[-2000:]


def test_a_day_goes_into_the_store_once_and_the_backend_reads_it(grpc_url, tmp_path):
    log, corpus = make_sample_day(tmp_path, queries=5, bad_lines=("{not json", '{"session": ["x"]}'))
    code, out = batch(tmp_path, log, corpus, f"127.0.0.1:1,{grpc_url}")  # nothing listens on port 1
    assert code == 1, out  # two lines failed
    assert "7 lines" in out and "5 done, 0 already stored, 2 failed" in out, out
    assert f"per endpoint: {{'{grpc_url}': 5}}" in out, out
    dead = (tmp_path / "dead.jsonl").read_text().splitlines()
    assert len(dead) == 2 and "line is not JSON" in dead[0] + dead[1] and "query is required" in dead[0] + dead[1]
    store = open_store(f"sqlite:///{tmp_path}/results.sqlite")
    import json

    for line in log.read_text().splitlines()[:5]:
        query = json.loads(line)["query"]
        result = cached_ranking(store, query.upper() + "  ")  # the key is the normalised query
        assert result is not None and result["ranked_ids"] and result["query"] == query
    with RerankClient(grpc_url) as client:
        assert client.cached_ranking(query, store_url=f"sqlite:///{tmp_path}/results.sqlite") == result
    code, out = batch(tmp_path, log, corpus, grpc_url)
    assert "0 done, 5 already stored, 2 failed" in out, out
