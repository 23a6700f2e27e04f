"""What the thinking budget and the cover-grade cache change, measured on the CPU tiny models.

For each setting a fresh server answers the same sequential requests; the table reports latency, generated
tokens (from the responses), how often the budget was forced, and cover evaluations against cache hits.

    python -m bench.effects [--requests 12]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from bench.runner import ROOT, start_cpu_server
from clients.rerank_client import RerankClient
from clients.workload import Workload

NO_REUSE = {"cover_cache": {"enabled": False}, "cover_store": {"url": ""}}
"""No grade kept between requests: neither the LRU nor the CPU profile's grade store."""
SETTINGS = [
    ("budget 0 (answer only)", "paper", {"generation": {"rerank": {"thinking_budget": 0}}, **NO_REUSE}),
    ("budget 256", "paper", {"generation": {"rerank": {"thinking_budget": 256}}, **NO_REUSE}),
    ("budget unbounded (max 512)", "paper", {"generation": {"rerank": {"thinking_budget": -1, "max_new_tokens": 512}},
                                            **NO_REUSE}),
    ("cache off", "repeated_covers", NO_REUSE),
    ("cache on", "repeated_covers", {"cover_cache": {"enabled": True}, "cover_store": {"url": ""}}),
]


def run(name: str, workload: str, pipeline: dict, requests: int, cache: Path, out: Path) -> dict:
    pool = Workload.load(ROOT / f"bench/workloads/{workload}.json").requests()
    workdir = out / name.split(" (")[0].replace(" ", "_")
    with start_cpu_server(cache, "", workdir, overrides={"pipeline": pipeline}) as server:
        with RerankClient(server.options.grpc_url, timeout_s=300) as client:
            latency, tokens, forced, evaluated, hits, valid = [], [], 0, 0, 0, 0
            for n in range(requests):
                r = pool[n % len(pool)]
                started = time.perf_counter()
                response = client.rerank(r.query, r.candidates, cover_images=r.covers).response
                latency.append((time.perf_counter() - started) * 1000)
                tokens.append(response["output_tokens"])
                forced += bool(response["budget_forced"])
                valid += bool(response["valid"])
                evaluated += response["cover_cache"]["evaluated"]
                hits += response["cover_cache"]["hits"]
    return {"setting": name, "p50_ms": statistics.median(latency), "rerank_tokens": statistics.mean(tokens),
            "forced": forced, "valid": valid, "evaluated": evaluated / requests, "hits": hits / requests,
            "requests": requests}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--cache", default=str(ROOT / ".cache"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/effects")
    args = parser.parse_args(argv)
    rows = []
    for name, workload, pipeline in SETTINGS:
        print(f"running: {name} ({workload} workload) ...", flush=True)
        rows.append(run(name, workload, pipeline, args.requests, Path(args.cache), args.out))
    print(f"\n{'setting':28} {'p50 ms':>8} {'re-rank tokens':>15} {'budget forced':>14} {'valid':>6} "
          f"{'VLM calls/req':>14} {'cache hits/req':>15}")
    for r in rows:
        print(f"{r['setting']:28} {r['p50_ms']:>8.0f} {r['rerank_tokens']:>15.1f} {r['forced']:>9}/{r['requests']:<4} "
              f"{r['valid']:>3}/{r['requests']:<2} {r['evaluated']:>14.1f} {r['hits']:>15.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
