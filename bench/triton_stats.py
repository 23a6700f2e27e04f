"""Triton's per-model statistics, diffed between two snapshots."""

from __future__ import annotations

from dataclasses import dataclass

import tritonclient.grpc as grpcclient


@dataclass(frozen=True)
class ModelStats:
    requests: int
    executions: int
    queue_ns: int
    compute_ns: int
    """compute_input + compute_infer + compute_output."""
    failures: int

    def __sub__(self, other: ModelStats) -> ModelStats:
        return ModelStats(self.requests - other.requests, self.executions - other.executions,
                          self.queue_ns - other.queue_ns, self.compute_ns - other.compute_ns,
                          self.failures - other.failures)


def snapshot(url: str) -> dict[str, ModelStats]:
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
                                        count("fail"))
    return out


def diff(after: dict[str, ModelStats], before: dict[str, ModelStats]) -> dict[str, ModelStats]:
    zero = ModelStats(0, 0, 0, 0, 0)
    return {name: stats - before.get(name, zero) for name, stats in after.items()}
