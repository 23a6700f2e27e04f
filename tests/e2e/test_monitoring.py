"""After traffic, the real server's metrics port holds every metric the shipped alert rules and dashboard read,
and the outcome counters count what the responses said."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ensemble.metric_families import FAMILIES
from ensemble.outcome_counts import response_kind
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
    kind = response_kind(response)
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


def test_engine_calls_of_the_pointwise_stage_are_timed(client, server, sample):
    """With options.pointwise the BLS calls the engines once per part of pairs, and the `pointwise_grader` entry
    calls them itself: the engine-latency histogram and the step counters see every one of those calls."""
    data, candidates, _ = sample
    time.sleep(METRICS_FLUSH_S + 0.5)
    before = scrape(server)
    client.rerank(data["query"], candidates[:3], options={"pointwise": "signal"})
    client.grade(data["query"], candidates[:2], grader="relevance")

    def grew(text: str, name: str, **labels: str) -> float:
        return value(text, name, **labels) - value(before, name, **labels)

    deadline = time.monotonic() + METRICS_FLUSH_S + 5
    while True:
        after = scrape(server)
        bls = grew(after, "rmr_engine_call_seconds_count", model="rich_media_reranker", engine="reranker_llm")
        entry = grew(after, "rmr_engine_call_seconds_count", model="pointwise_grader", engine="reranker_llm")
        if (bls >= 2 and entry >= 1) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert bls >= 2, "the pairs' call and the listwise call, both on the text slot"
    assert entry >= 1
    assert grew(after, "rmr_bls_step_total", model="pointwise_grader", step="reranker_llm call") == entry
    assert grew(after, "rmr_bls_step_seconds_total", model="pointwise_grader", step="reranker_llm call") > 0


def test_the_page_holds_exactly_the_families_labels_and_values_the_readme_states(client, server, sample):
    """ensemble/metric_families.py is what tests/unit/test_metric_families.py holds the README's table to."""
    data, candidates, covers = sample
    client.rerank(data["query"], candidates[:3], cover_images=covers, options={"pointwise": "signal"})
    client.grade(data["query"], candidates[:2], grader="experience")
    client.evaluate_cover(next(iter(covers.values())), task="quality")
    time.sleep(METRICS_FLUSH_S + 0.5)
    exported = {f.name: f for f in text_string_to_metric_families(scrape(server)) if f.name.startswith("rmr_")}
    # the parser names a counter family without its _total
    stated = {re.sub(r"_total$", "", name): family for name, family in FAMILIES.items()}
    assert exported.keys() == stated.keys(), "families on the page and in ensemble/metric_families.py"
    for name, family in exported.items():
        spec = stated[name]
        assert family.type == spec.kind, name
        for sample_ in family.samples:
            labels = {k: v for k, v in sample_.labels.items() if k != "le"}
            assert tuple(sorted(labels)) == tuple(sorted(spec.label_names)), (name, sample_.labels)
            for label in spec.labels:
                assert label.values is None or labels[label.name] in label.values, (name, sample_.labels)


def test_promtool_finds_nothing_to_flag_on_the_live_metrics_page(client, server, sample, promtool):
    data, candidates, _ = sample
    client.rerank(data["query"], candidates[:3])
    time.sleep(METRICS_FLUSH_S + 0.5)
    page = scrape(server)
    checked = subprocess.run([promtool, "check", "metrics"], input=page, capture_output=True, text=True,
                             timeout=60)
    ours = [line for line in (checked.stdout + checked.stderr).splitlines() if "rmr_" in line]
    assert not ours, "promtool check metrics flags:\n" + "\n".join(ours)


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
    kind = response_kind(result.response)
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
