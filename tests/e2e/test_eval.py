"""`rmr eval` against the real CPU server: Table 1 for the deployment and a floor, Table 2's ablations from one
command, Table 3 on labelled covers, the position-bias check; the saved predictions recompute the tables."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clients.eval.report import recompute
from clients.eval.sample import make_eval_set
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e


def rmr_eval(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "clients.cli", "eval", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return done.stdout


def test_eval_against_the_server_prints_tables_one_to_three(grpc_url, tmp_path):
    rerank, covers = make_eval_set(tmp_path, per_type=1, candidates=(4, 5))
    out = rmr_eval("--set", str(rerank), "--server", grpc_url, "--ranker", "fallback", "--ablations",
                   "--modes", "pointwise_rank,post_rank",
                   "--json", str(tmp_path / "run.json"), "--predictions", str(tmp_path / "pred.jsonl"),
                   "--covers", str(covers), "--limit", "4")
    for run in ("fallback", "deployment", "deployment:no_covers", "deployment:relevance_only",
                "deployment:no_thinking", "deployment:pointwise_rank", "deployment:post_rank"):
        assert f"\n{run}\n" in f"\n{out}", out
        name = run.replace(":", "-")
        saved = json.loads((tmp_path / f"run.{name}.json").read_text())
        assert saved["table"]["All"]["n"] == 3
        assert recompute(tmp_path / f"pred.{name}.jsonl") == saved["table"]
    predictions = [json.loads(line) for line in (tmp_path / "pred.deployment.jsonl").read_text().splitlines()]
    assert all(sorted(p["predicted"]) == sorted(p["label"]) for p in predictions)  # full permutations
    assert all("valid" in p and "repairs" in p for p in predictions)  # what the deployment said of each
    ranked_by = [json.loads(line)["ranked_by"] for line in (tmp_path / "pred.deployment-pointwise_rank.jsonl")
                 .read_text().splitlines()]
    assert ranked_by == ["pointwise"] * 3
    ranked_by = [json.loads(line)["ranked_by"] for line in (tmp_path / "pred.deployment-post_rank.jsonl")
                 .read_text().splitlines()]
    assert all(r.endswith("+post_rank") for r in ranked_by), ranked_by
    for task in ("relevance", "quality"):
        assert f"{task}: 2 covers, accuracy" in out, out
    assert "label \\ predicted" in out


def test_position_bias_check(grpc_url, tmp_path):
    rerank, _ = make_eval_set(tmp_path, per_type=1, candidates=(4, 4))
    out = rmr_eval("--set", str(rerank), "--server", grpc_url, "--shuffles", "2", "--limit", "2")
    line = next(line for line in out.splitlines() if line.startswith("position bias"))
    value = float(line.split("input order) ")[1].split()[0].rstrip(","))
    assert 0.0 <= value <= 1.0
