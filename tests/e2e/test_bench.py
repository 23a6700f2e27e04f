"""Smoke runs of the load test and the benchmarks (short; no timings asserted)."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import CACHE

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


_SUMMARY_ROW = re.compile(r"^(?:grpc\s+(\S+)|\s+(Aggregated))\s+(\d+)\s+(\d+)\(", re.M)


def test_locust_headless_run_reports_every_call(grpc_url, tmp_path):
    """One user per model (each starts at its own place in the schedule). Read from locust's final summary, printed
    once the calls in flight at the end have answered (`--stop-timeout`): its CSV is written before them, and a model
    whose calls were all in flight (seconds each on the tiny models) had no row there."""
    prefix = tmp_path / "smoke"
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "clients/locustfile.py", "--headless", "-u", "7", "-r", "7", "-t", "6s",
         "--host", grpc_url, "--csv", str(prefix), "--only-summary", "--stop-timeout", "60",
         "--workload", "bench/workloads/smoke.json",
         "--weights", "rich_media_reranker=1,reranker=1,cover_evaluator=1,query_planner=1,pointwise_grader=1,"
                      "post_ranker=1,list_judge=1",
         "--rerank-options", '{"pointwise": "rank", "post_rank": true}', "--grader", "experience"],
        cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {name or total: (int(count), int(fails)) for name, total, count, fails in _SUMMARY_ROW.findall(done.stderr)}
    assert rows.get("Aggregated", (0, 0))[0] > 0, done.stderr[-2000:]
    failures = Path(f"{prefix}_failures.csv")
    assert rows["Aggregated"][1] == 0, failures.read_text() if failures.exists() else rows
    assert {"rich_media_reranker", "reranker", "cover_evaluator", "query_planner", "pointwise_grader", "post_ranker",
            "list_judge"} <= set(rows)


def test_locust_refuses_non_loopback_targets():
    from clients.load_options import require_loopback

    assert require_loopback("127.0.0.1:8001") == "127.0.0.1:8001"
    assert require_loopback("localhost:8001") == "localhost:8001"
    with pytest.raises(ValueError, match="loopback"):
        require_loopback("10.1.2.3:8001")


def test_runner_ladder_writes_table_csv_and_plot(server, tmp_path, capsys):
    from bench.runner import main

    assert main(["--url", server.options.grpc_url, "--metrics-url", server.options.metrics_url, "--ladder", "1",
                 "--step-seconds", "4", "--workload", str(ROOT / "bench/workloads/smoke.json"),
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # covers may all come from the cover-grade cache by now; the re-rank path always runs. The BLS runs the
    # pre/post steps itself and exports their time, which the table shows beside the engines'.
    assert "req/s" in out and "reranker_llm (engine)" in out
    [pre_row] = [line for line in out.splitlines() if line.startswith("reranker_preprocess (in BLS)")]
    assert float(pre_row.split()[-1]) > 0  # compute ms per request
    assert (tmp_path / "ladder.png").stat().st_size > 10_000
    rows = list(csv.DictReader((tmp_path / "ladder.csv").open()))
    assert rows[0]["concurrency"] == "1" and int(rows[0]["requests"]) > 0


def test_overhead_bench_compares_servers_side_by_side(tmp_path, capsys):
    """Two servers, each request sent to both: one waits for its engine calls through async_exec, the other is
    served from a checkout (`--baseline`; this one, as a before/after run would serve another revision's) and
    waits in place. Both answer every request validly (the bench asserts it) and get a row each."""
    from bench.overhead import main

    # Warm-up of 4: the CPU profile runs two instances per engine slot, each cold on its first calls.
    assert main(["--requests", "3", "--warmup", "4", "--modes", "engines:bls_waits_in_place=false",
                 "--baseline", str(ROOT), "--cache", str(CACHE), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("  engines", "  baseline"))][:2]
    assert [r.split()[0] for r in rows] == ["engines:bls_waits_in_place=false", "baseline"]
    figures = [[float(v) for v in re.findall(r"(-?\d+\.\d) ms", r)] for r in rows]
    assert all(len(f) == 6 and f[-1] > 0 for f in figures)  # the last: outside the engines, in the BLS
    assert "where the BLS's own time goes" in out


def test_capacity_model_runs_on_the_workload(capsys):
    from bench.capacity import main

    assert main(["--workload", str(ROOT / "bench/workloads/smoke.json"), "--thinking", "0,256"]) == 0
    out = capsys.readouterr().out
    assert out.count("pipeline") >= 8 and "A800" in out and "A10" in out


def test_gpu_engine_benchmark_tiny_on_cpu(capsys):
    from bench.gpu_engine import main

    assert main(["--tiny", "--batches", "1", "--input", "16", "--thinking", "2"]) == 0
    out = capsys.readouterr().out
    assert "prefill tok/s" in out and "slot req/s" in out and "cudnn" not in out
    row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["1"])
    assert all(float(value.replace(",", "")) > 0 for value in row[1:7])


def test_gpu_check_tiny_on_cpu(capsys, tmp_path):
    """The device check's own code at the tiny shapes: both slots at two batch sizes, then the pipeline over gRPC
    with the slots' weights made at load (`weights = "random"`)."""
    from bench.gpu_check import main

    assert main(["--tiny", "--levels", "1,2", "--seconds", "2", "--cache", str(CACHE), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["rerank"], ["cover"])]
    assert [(r[0], r[1]) for r in rows] == [("rerank", "1"), ("rerank", "2"), ("cover", "1"), ("cover", "2")]
    assert all(float(v.replace(",", "")) > 0 for r in rows for v in [*r[2:6], r[7], r[9]])  # bounds: "-" on a CPU
    levels = [line.split() for line in out.splitlines() if line.split()[:1] == ["cpu"]]
    assert [row[1].rstrip("*") for row in levels] == ["1", "2"]
    assert all(int(row[-2]) == 0 and float(row[2]) > 0 for row in levels), out
    assert (tmp_path / "gpu_check.csv").exists()
