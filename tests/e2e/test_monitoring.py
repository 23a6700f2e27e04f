"""After traffic, the real server's metrics port holds every metric the shipped alert rules and dashboard read,
and the outcome counters count what the responses said."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clients.rerank_client import RerankError
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
    _refused(client, data["query"], candidates)  # the refusal counter has series once something was refused
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
    _refused(client, data["query"], candidates)
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


def _refused(client, query, candidates) -> None:
    bad = [dict(candidates[0])] + [dict(candidates[1], click_through_rate=1.5)]
    with pytest.raises(RerankError, match="INVALID_ARGUMENT"):
        client.rerank(query, bad)


def test_refusals_are_counted_by_entry_point_and_field(client, server, sample):
    """Triton counts an INVALID_ARGUMENT answer as a success; only this counter sees a caller sending bad requests."""
    data, candidates, _ = sample
    field = "candidates[].click_through_rate"
    before = scrape(server)
    _refused(client, data["query"], candidates)
    with pytest.raises(RerankError, match="INVALID_ARGUMENT"):  # the `reranker` ensemble refuses in its pre step
        client.rerank_step(data["query"], [dict(candidates[0], click_through_rate=-1)])
    after = scrape(server)
    assert value(after, "rmr_requests_refused_total", model="rich_media_reranker", field=field) == value(
        before, "rmr_requests_refused_total", model="rich_media_reranker", field=field) + 1
    assert value(after, "rmr_requests_refused_total", model="reranker", field=field) == value(
        before, "rmr_requests_refused_total", model="reranker", field=field) + 1


def test_every_store_series_is_on_the_page_from_load_so_a_first_outage_alerts(server):
    """GradeStoreErrors rates the error series: one that first appeared with the first error would hide it."""
    text = scrape(server)
    for op in ("get", "set"):
        for result in ("ok", "error", "bypassed"):
            assert any(line.startswith("rmr_store_calls_total{") and f'op="{op}"' in line
                       and f'result="{result}"' in line for line in text.splitlines()), (op, result)
    for result in ("hits", "misses", "invalid", "unavailable"):
        for task in ("relevance", "quality"):
            assert any(line.startswith("rmr_cover_store_total{") and f'result="{result}"' in line
                       and f'task="{task}"' in line for line in text.splitlines()), (result, task)
