"""Table 1's layout: N@4, N@10, R@4, R@10 and RBO over all queries and per query type, with the per-query
values behind every mean (what `--predictions` and `--compare` use)."""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.eval.labelled import QUERY_TYPES
from ensemble.metrics import ndcg_at_k, rbo, recall_at_k

METRICS: dict[str, Callable[[Sequence[str], Sequence[str]], float]] = {
    "N@4": lambda pred, label: ndcg_at_k(pred, label, 4),
    "N@10": lambda pred, label: ndcg_at_k(pred, label, 10),
    "R@4": lambda pred, label: recall_at_k(pred, label, 4),
    "R@10": lambda pred, label: recall_at_k(pred, label, 10),
    "RBO": lambda pred, label: rbo(pred, label),
}
"""The paper's definitions (ensemble/metrics.py), in Table 1's column order."""
ALL = "All"


def score(predicted: Sequence[str], label: Sequence[str]) -> dict[str, float]:
    return {name: metric(predicted, label) for name, metric in METRICS.items()}


@dataclass
class Run:
    """One ranker over one labelled set: each query's prediction and metrics."""

    name: str
    rows: list[dict[str, Any]]
    """{"query", "query_type", "predicted", "label", "metrics", ...what the ranker said}"""

    def table(self) -> dict[str, dict[str, float]]:
        """Group (All, then each query type present) -> metric -> mean, plus "n"."""
        groups = {ALL: self.rows, **{t: [r for r in self.rows if r["query_type"] == t] for t in QUERY_TYPES}}
        return {group: {"n": len(rows), **{m: statistics.fmean(r["metrics"][m] for r in rows) for m in METRICS}}
                for group, rows in groups.items() if rows}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "table": self.table(),
                "per_query": [{"query": r["query"], "query_type": r["query_type"], "metrics": r["metrics"]}
                              for r in self.rows]}

    def write_predictions(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as fh:
            for row in self.rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def recompute(predictions: Path) -> dict[str, dict[str, float]]:
    """The table again, from a predictions file alone (its `predicted` and `label`)."""
    rows = []
    for line in predictions.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        rows.append({**row, "metrics": score(row["predicted"], row["label"])})
    return Run("recomputed", rows).table()


def text_table(runs: Sequence[Run], *, markdown: bool = False) -> str:
    """One block per run: rows All + query types, columns the metrics (as the paper prints, in %)."""
    columns = ["n", *METRICS]
    lines = []
    for run in runs:
        table = run.table()
        if markdown:
            lines += [f"**{run.name}**", "", "| group | " + " | ".join(columns) + " |",
                      "|---|" + "---:|" * len(columns)]
            lines += [f"| {g} | {v['n']} | " + " | ".join(f"{100 * v[m]:.2f}" for m in METRICS) + " |"
                      for g, v in table.items()]
        else:
            lines += [run.name, f"  {'group':20}" + "".join(f"{c:>8}" for c in columns)]
            lines += [f"  {g:20}{v['n']:>8}" + "".join(f"{100 * v[m]:>8.2f}" for m in METRICS)
                      for g, v in table.items()]
        lines.append("")
    return "\n".join(lines)


def paired_test(a: Sequence[float], b: Sequence[float], *, samples: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value of a paired randomisation (sign-flip) test on the mean difference b - a."""
    if len(a) != len(b) or not a:
        raise ValueError("the two runs must score the same queries")
    diffs = [y - x for x, y in zip(a, b)]
    observed = abs(statistics.fmean(diffs))
    rng = random.Random(seed)
    extreme = sum(abs(statistics.fmean(d if rng.random() < 0.5 else -d for d in diffs)) >= observed - 1e-12
                  for _ in range(samples))
    return (extreme + 1) / (samples + 1)


def compare(first: Path, second: Path) -> str:
    """Each metric over all queries: A, B, B - A and the p-value; the queries must be the same, in order."""
    a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (first, second))
    qa, qb = ([r["query"] for r in run["per_query"]] for run in (a, b))
    if qa != qb:
        raise SystemExit(f"{first} and {second} did not score the same queries in the same order")
    lines = [f"{a['name']} (A) against {b['name']} (B), {len(qa)} queries, paired randomisation test",
             f"  {'metric':8}{'A':>8}{'B':>8}{'B - A':>8}{'p':>8}"]
    for metric in METRICS:
        xs = [r["metrics"][metric] for r in a["per_query"]]
        ys = [r["metrics"][metric] for r in b["per_query"]]
        mean_a, mean_b = statistics.fmean(xs), statistics.fmean(ys)
        lines.append(f"  {metric:8}{100 * mean_a:8.2f}{100 * mean_b:8.2f}{100 * (mean_b - mean_a):+8.2f}"
                     f"{paired_test(xs, ys):8.4f}")
    return "\n".join(lines)
