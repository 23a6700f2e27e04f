"""Pipeline overhead: everything outside the engine slots, per re-rank request with 20 candidates and 20 covers.

The engine slots are replaced by instant simulated engines (engines/simulated.py, `empty`), so what remains is
pre/post/BLS work, the ensemble hand-offs and the gRPC hop. Requests are sent one at a time.

    python -m bench.overhead [--requests 60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from bench.runner import CONTAINERS, ENGINE_SLOTS, ROOT, start_cpu_server
from bench.triton_stats import diff, snapshot
from clients.rerank_client import RerankClient
from clients.workload import Workload

TARGET_MS = 5.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--workload", default=str(ROOT / "bench/workloads/overhead.json"))
    parser.add_argument("--cache", default=str(ROOT / ".cache"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/overhead")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    pool = Workload.load(args.workload).requests()
    with start_cpu_server(Path(args.cache), "empty", args.out) as server:
        url = server.options.grpc_url
        with RerankClient(url, timeout_s=60) as client:
            for r in pool[: args.warmup]:
                client.rerank(r.query, r.candidates, cover_images=r.covers)
            before = snapshot(url)
            client_ms, server_ms = [], []
            for n in range(args.requests):
                r = pool[n % len(pool)]
                started = time.perf_counter()
                result = client.rerank(r.query, r.candidates, cover_images=r.covers)
                client_ms.append((time.perf_counter() - started) * 1000)
                server_ms.append(result.response["timings_ms"]["total"])
                assert len(result.ranked_ids) == len(r.candidates)
            delta = diff(snapshot(url), before)
    n_covers = sum(1 for c in pool[0].covers if c)
    print(f"overhead of one re-rank request: {len(pool[0].candidates)} candidates, {n_covers} covers "
          f"({2 * n_covers} cover evaluations), engines simulated as instant; {args.requests} sequential requests")
    print(f"  client round trip   p50 {statistics.median(client_ms):7.1f} ms   p95 {percentile(client_ms, .95):7.1f} ms")
    print(f"  inside the BLS      p50 {statistics.median(server_ms):7.1f} ms   p95 {percentile(server_ms, .95):7.1f} ms")
    print(f"  target: <= {TARGET_MS:.0f} ms p50 outside the engines -> "
          f"{'MET' if statistics.median(client_ms) <= TARGET_MS else 'NOT MET'}")
    print("\nper request, summed over the model's calls (queue + compute ms; executions per request):")
    for name, s in sorted(delta.items()):
        if not s.requests:
            continue
        tag = "engine, simulated" if name in ENGINE_SLOTS else "total of its steps" if name in CONTAINERS else "step"
        print(f"  {name:22} {s.queue_ns / args.requests / 1e6:7.2f} + {s.compute_ns / args.requests / 1e6:7.2f}"
              f"   {s.executions / args.requests:5.1f} executions, {s.requests / args.requests:5.1f} requests  ({tag})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
