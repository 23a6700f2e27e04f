"""After traffic, the real server's metrics port holds every metric the shipped alert rules and dashboard read,
and the outcome counters count what the responses said."""

from __future__ import annotations

import re
import time
import urllib.request

import pytest

from server.stub.metrics import METRICS_FLUSH_S
from tests.unit.test_monitoring import named_metrics

pytestmark = pytest.mark.e2e


def scrape(server) -> str:
    return urllib.request.urlopen(server.options.metrics_url, timeout=10).read().decode()


def families(text: str) -> set[str]:
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    return names | {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def value(text: str, name: str, **labels: str) -> float:
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and all(w in line for w in wanted))


def test_every_metric_the_rules_and_dashboard_read_is_exported(client, server, sample):
    data, candidates, covers = sample
    time.sleep(METRICS_FLUSH_S + 0.5)  # earlier tests' requests are published before the baseline is read
    before = scrape(server)
    response = client.rerank(data["query"], candidates, cover_images=covers).response
    kind = "fallback" if response["fallback"] else "valid" if response["valid"] else "repaired"
    model_grades = sum(g["source"].get("relevance") == "model" for g in response["cover_grades"])
    pointwise = client.grade(data["query"], candidates[:3], grader="experience")
    known = sum(g.grade is not None for g in pointwise)
    deadline = time.monotonic() + METRICS_FLUSH_S + 5

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    while True:  # the BLS and the pointwise entry publish at most METRICS_FLUSH_S after a request
        after = scrape(server)
        counted = grew("rmr_rerank_answers_total", model="rich_media_reranker", kind=kind)
        graded = grew("rmr_pointwise_grades_total", model="pointwise_grader", grader="experience", source="model")
        if (counted >= 1 and graded >= known) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert counted == 1 and graded == known
    assert (value(after, "rmr_cover_grades_total", task="relevance", source="model")
            - value(before, "rmr_cover_grades_total", task="relevance", source="model")) == model_grades
    assert value(after, "rmr_engine_call_seconds_count", engine="reranker_llm") >= 1
    missing = named_metrics() - families(after)
    assert not missing, f"named by deploy/monitoring but not exported: {sorted(missing)}"


def test_responses_and_request_log_lines_name_the_versions(client, server, sample):
    data, candidates, _ = sample
    response = client.rerank(data["query"], candidates[:3]).response
    versions = response["versions"]
    assert versions["profile"] == "cpu" and versions["model_version"] == response["model_version"]
    assert len(versions["reranker_checkpoint"]) == 16 and len(versions["vlm_checkpoint"]) == 16 and versions["prompts"]
    tag = (f"[model_version={versions['model_version']} reranker={versions['reranker_checkpoint']} "
           f"vlm={versions['vlm_checkpoint']} prompts={versions['prompts']} profile=cpu]")
    assert tag in server.log_tail(200000), "the BLS's log lines carry the versions"


def test_the_direct_entry_points_count_their_own_outcomes(client, server, sample):
    """`reranker` (the ensemble's post step) and `cover_evaluator` count under their own names, as the BLS does."""
    data, candidates, covers = sample
    time.sleep(METRICS_FLUSH_S + 0.5)
    before = scrape(server)
    result = client.rerank_step(data["query"], candidates[:4])
    kind = "fallback" if result.response["fallback"] else "valid" if result.response["valid"] else "repaired"
    client.evaluate_cover(next(iter(covers.values())), task="quality")
    deadline = time.monotonic() + METRICS_FLUSH_S + 5
    while True:  # the step publishes as it answers; the cover entry at most METRICS_FLUSH_S later
        after = scrape(server)
        answers = (value(after, "rmr_rerank_answers_total", model="reranker", kind=kind)
                   - value(before, "rmr_rerank_answers_total", model="reranker", kind=kind))
        grades = (value(after, "rmr_cover_grades_total", model="cover_evaluator", task="quality")
                  - value(before, "rmr_cover_grades_total", model="cover_evaluator", task="quality"))
        if (answers >= 1 and grades >= 1) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert (answers, grades) == (1, 1)
    assert not [line for line in after.splitlines()  # it ranks nothing, so it declares no answer series
                if line.startswith("rmr_rerank_answers_total{") and 'model="cover_evaluator"' in line]
