"""The T+1 job against the real server on a local Ray: a day's queries through the chain into the result store,
looked up with one GET; rerun, it skips what is stored; a dead endpoint first in the list costs nothing."""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata

import pytest

from clients.batch.results import cached_ranking
from clients.batch.sample import make_sample_day
from clients.rerank_client import RerankClient
from store import open_store
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e


def batch(tmp_path, log, corpus, endpoints: str, actors: int = 2, *more: str) -> tuple[int, str]:
    command = [sys.executable, "-m", "clients.cli", "batch", "--queries", str(log), "--corpus", str(corpus),
               "--store", f"sqlite:///{tmp_path}/results.sqlite", "--server", endpoints, "--num-cpus", "2",
               "--actors", str(actors), "--dead-letters", str(tmp_path / "dead.jsonl"), "--backoff", "60", "--quiet",
               *more]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr[-2000:]


def planner_runs(grpc_url: str) -> int:
    import tritonclient.grpc as grpcclient

    from ensemble import names

    client = grpcclient.InferenceServerClient(grpc_url)
    return client.get_inference_statistics(names.PLANNER.entry).model_stats[0].inference_stats.success.count


def test_a_day_goes_into_the_store_once_and_the_backend_reads_it(grpc_url, tmp_path):
    import json

    refused = '{"query": "q", "candidates": [{"id": "x", "title": "t", "click_through_rate": 5}]}'
    log, corpus = make_sample_day(tmp_path, queries=5, distinct=True)
    first = json.loads(log.read_text().splitlines()[0])["query"]
    # The same query after the result key's normalisation (case, whitespace, NFKC): run once, counted.
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in first)
    again = [json.dumps({"query": f"  {first.upper()}  "}), json.dumps({"query": wide + "\t"}, ensure_ascii=False)]
    assert unicodedata.normalize("NFKC", wide) == first
    with log.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(["{not json", '{"session": ["x"]}', refused, *again]) + "\n")
    planned = planner_runs(grpc_url)
    # More actors than `--num-cpus` holds at a quarter CPU each: they must not starve the read tasks.
    # Ranked by pointwise grade (options.pointwise), the head post-ranked (options.post_rank, the documents'
    # features): the job's options reach every re-rank request.
    code, out = batch(tmp_path, log, corpus, f"127.0.0.1:1,{grpc_url}", 8,  # nothing listens on port 1
                      "--pointwise", "rank", "--pointwise-grader", "experience", "--post-rank")
    assert code == 1, out  # three lines failed
    assert "10 lines" in out and "5 done, 0 already stored, 3 failed, 2 duplicates" in out, out
    # the chain ran once per distinct query: the five done, and the refused line's (its re-rank was refused)
    assert planner_runs(grpc_url) - planned == 6, out
    assert "answers: {'pointwise': 5}" in out, out  # as the server counts them: no listwise answer, no repair
    assert f"per endpoint: {{'{grpc_url}': 5}}" in out, out
    dead = "\n".join((tmp_path / "dead.jsonl").read_text().splitlines())
    assert dead.count("\n") == 2 and "line is not JSON" in dead and "query is required" in dead
    assert "INVALID_ARGUMENT: candidates[0].click_through_rate must be <= 1" in dead
    store = open_store(f"sqlite:///{tmp_path}/results.sqlite")
    for line in log.read_text().splitlines()[:5]:
        query = json.loads(line)["query"]
        result = cached_ranking(store, query.upper() + "  ")  # the key is the normalised query
        assert result is not None and result["ranked_ids"] and result["query"] == query
        assert result["ranked_by"] == "pointwise+post_rank" and result["pointwise"]["grader"] == "experience"
        assert result["post_rank"]["applied"] and result["post_rank"]["top_k"] == min(10, len(result["ranked_ids"]))
        assert len(result["pointwise"]["grades"]) == len(result["ranked_ids"])
    with RerankClient(grpc_url) as client:
        assert client.cached_ranking(query, store_url=f"sqlite:///{tmp_path}/results.sqlite") == result
    code, out = batch(tmp_path, log, corpus, grpc_url)
    assert "0 done, 5 already stored, 3 failed, 2 duplicates" in out, out


def result_keys(tmp_path) -> int:
    import sqlite3

    path = tmp_path / "results.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM entries WHERE key LIKE 'rmr:rank:%' "
                          "AND key != 'rmr:rank:latest'").fetchone()[0]


def test_a_job_killed_halfway_and_rerun_stores_every_query_once(grpc_url, tmp_path):
    """SIGKILL to the job's whole process group once a few results are in; the rerun completes the day."""
    import json
    import os
    import signal
    import time

    log, corpus = make_sample_day(tmp_path, queries=12)
    distinct = {json.loads(line)["query"].casefold() for line in log.read_text().splitlines()}
    command = [sys.executable, "-m", "clients.cli", "batch", "--queries", str(log), "--corpus", str(corpus),
               "--store", f"sqlite:///{tmp_path}/results.sqlite", "--server", grpc_url, "--num-cpus", "2",
               "--actors", "1", "--dead-letters", str(tmp_path / "dead.jsonl"), "--quiet"]
    job = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    deadline = time.monotonic() + 300
    while result_keys(tmp_path) < 2 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(timeout=30)
    assert 0 < result_keys(tmp_path) < len(distinct)
    code, out = batch(tmp_path, log, corpus, grpc_url)
    assert code == 0, out
    assert result_keys(tmp_path) == len(distinct), out  # every query once: none lost, none twice


def test_a_server_that_goes_away_mid_job_costs_no_query(grpc_url, tmp_path):
    """Two endpoints; one stops after the first results: its queries retry on the other, the job finishes."""
    import threading
    import time
    from pathlib import Path

    from bench.runner import start_cpu_server
    from tests.e2e.conftest import CACHE

    from ensemble import names

    log, corpus = make_sample_day(tmp_path, queries=12)
    # What the job calls (the planner, the BLS) and the engine slots: a lean replica starts in less time.
    other = start_cpu_server(Path(CACHE), "", tmp_path / "other", models=(*names.PIPELINE_MODELS, names.PLANNER.entry))
    other.__enter__()

    def stop_after_first_results() -> None:
        """Once the other server has answered a re-rank: it goes away in the middle of the job."""
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(other.options.grpc_url)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            stats = client.get_inference_statistics(names.RICH_MEDIA_RERANKER).model_stats[0]
            if stats.inference_stats.success.count >= 2:  # the version probe, then a query
                break
            time.sleep(0.05)
        other.__exit__(None, None, None)

    stopper = threading.Thread(target=stop_after_first_results)
    stopper.start()
    try:
        code, out = batch(tmp_path, log, corpus, f"{other.options.grpc_url},{grpc_url}")
    finally:
        stopper.join()
    done, stored, failed, repeated = map(int, re.search(
        r"(\d+) done, (\d+) already stored, (\d+) failed, (\d+) duplicates", out).groups())
    assert code == 0 and failed == 0 and done + stored + repeated == 12, out  # a repeated query runs once
    per_endpoint = out.split("per endpoint:")[1].splitlines()[0]
    assert grpc_url in per_endpoint and other.options.grpc_url in per_endpoint, out  # it served, then went away
