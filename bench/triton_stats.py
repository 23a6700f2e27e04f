"""Triton's per-model statistics, diffed between two snapshots.

Steps the BLS runs in its own process (bls_sub_calls = "engines") have no Triton statistics; the BLS exports
their time as metrics (`rmr_bls_step_seconds_total{step}`), read here from the metrics endpoint as rows named
"<step> (in BLS)" with the same meaning: compute time and runs.
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass

import tritonclient.grpc as grpcclient
from prometheus_client.parser import text_string_to_metric_families

from ensemble.names import RICH_MEDIA_RERANKER, Metric
from server.stub.metrics import METRICS_FLUSH_S


@dataclass(frozen=True)
class ModelStats:
    requests: int
    executions: int
    queue_ns: int
    compute_ns: int
    """compute_input + compute_infer + compute_output."""
    failures: int
    inferences: int = 0
    """Batch rows served (a request of n rows is one request and n inferences)."""

    def __add__(self, other: ModelStats) -> ModelStats:
        return ModelStats(*(a + b for a, b in zip(self._values(), other._values())))

    def _values(self) -> tuple[int, ...]:
        return (self.requests, self.executions, self.queue_ns, self.compute_ns, self.failures, self.inferences)

    def __sub__(self, other: ModelStats) -> ModelStats:
        return ModelStats(self.requests - other.requests, self.executions - other.executions,
                          self.queue_ns - other.queue_ns, self.compute_ns - other.compute_ns,
                          self.failures - other.failures, self.inferences - other.inferences)


IN_BLS = " (in BLS)"


def is_wait(name: str) -> bool:
    """An engine call as the BLS waits for it: the slot's own time is a row of its own."""
    return name.endswith(" call" + IN_BLS)


def bls_steps(metrics_url: str) -> dict[str, ModelStats]:
    """The in-BLS steps' totals from Triton's Prometheus endpoint (http://host:8002/metrics)."""
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    totals: dict[str, dict[str, float]] = {Metric.STEP_SECONDS: {}, Metric.STEP_CALLS: {}}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in totals and sample.labels.get("model") == RICH_MEDIA_RERANKER:
                totals[sample.name][sample.labels["step"]] = sample.value
    seconds, calls = totals[Metric.STEP_SECONDS], totals[Metric.STEP_CALLS]
    return {step + IN_BLS: ModelStats(int(calls.get(step, 0)), int(calls.get(step, 0)), 0, int(total * 1e9), 0)
            for step, total in seconds.items()}


def snapshot(url: str, metrics_url: str | None = None) -> dict[str, ModelStats]:
    """Every model's statistics, and the in-BLS steps' when `metrics_url` is given (after the BLS has published
    what it counted so far: server/metrics_export.py)."""
    if metrics_url:
        time.sleep(METRICS_FLUSH_S + 0.2)
    client = grpcclient.InferenceServerClient(url)
    stats = client.get_inference_statistics(as_json=True).get("model_stats", [])
    client.close()
    out = {}
    for model in stats:
        s = model.get("inference_stats", {})

        def ns(key: str) -> int:
            return int(s.get(key, {}).get("ns", 0))

        def count(key: str) -> int:
            return int(s.get(key, {}).get("count", 0))

        out[model["name"]] = ModelStats(count("success"), int(model.get("execution_count", 0)), ns("queue"),
                                        ns("compute_input") + ns("compute_infer") + ns("compute_output"),
                                        count("fail"), int(model.get("inference_count", 0)))
    if metrics_url:
        out.update(bls_steps(metrics_url))
    return out


def diff(after: dict[str, ModelStats], before: dict[str, ModelStats]) -> dict[str, ModelStats]:
    zero = ModelStats(0, 0, 0, 0, 0)
    return {name: stats - before.get(name, zero) for name, stats in after.items()}
