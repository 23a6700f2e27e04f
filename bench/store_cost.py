"""What the shared grade store costs on the online path, side by side in one run.

Three servers (engine slots simulated: `valid`), each request sent to each in turn, 20 candidates with 20 covers:
- `lru`: the in-process cache only (today's path, no store);
- `redis`: the cache off, every grade read from (and written to) a real redis-server on loopback;
- `none`: no cache, no store (every grade computed).
All-hit: the same requests again after a warm pass (the LRU, or Redis, holds every grade) -> `redis` vs `lru`.
All-miss: every request with new covers -> `redis` (a miss, then a write) vs `none`.
Figures are the time in the BLS (p50), which is what the store adds to. Then the covers of another pool are
graded at indexing time (`rmr covers`' batches) through `redis`, those requests replayed, and the measured share
of quality grades the store answered goes into the capacity model (bench/capacity.py): the pipeline's
compute-bound requests/s on A10 and A800 before and after.

    python -m bench.store_cost [--requests 40]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.runner import ROOT, start_cpu_server
from clients.rerank_client import RerankClient
from clients.workload import Workload
from ensemble.names import STORE_URL_ENV

TARGET_MS = 0.5
SERVERS = {"lru": ({"enabled": True}, False), "redis": ({"enabled": False}, True), "none": ({"enabled": False}, False)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--cache", default=str(ROOT / ".cache"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/store_cost")
    args = parser.parse_args(argv)
    from store.local_redis import RedisServer

    workload = Workload.load(ROOT / "bench/workloads/overhead.json")
    fresh = Workload({**workload.spec, "pool": 2 * args.requests}).requests()
    repeated, new = fresh[:args.requests], fresh[args.requests:]
    with ExitStack() as stack:
        redis = stack.enter_context(RedisServer(Path(tempfile.mkdtemp(prefix="rmr-redis-"))))
        clients = {}
        for name, (cache, with_store) in SERVERS.items():
            if with_store:
                os.environ[STORE_URL_ENV] = redis.url  # the server takes its environment when it starts
            try:
                server = stack.enter_context(start_cpu_server(
                    Path(args.cache), "valid", args.out / name,
                    overrides={"pipeline": {"cover_cache": cache, "cover_store": {"url": ""}}}))
            finally:
                os.environ.pop(STORE_URL_ENV, None)
            clients[name] = stack.enter_context(RerankClient(server.options.grpc_url, timeout_s=60))
        times: dict[tuple[str, str], list[float]] = {}
        for r in repeated:  # warm: the LRU and Redis now hold these requests' grades
            for client in clients.values():
                client.rerank(r.query, r.candidates, cover_images=r.covers)
        for phase, pool in (("all-hit", repeated), ("all-miss", new)):
            for r in pool:
                for name, client in clients.items():
                    response = client.rerank(r.query, r.candidates, cover_images=r.covers).response
                    times.setdefault((phase, name), []).append(response["timings_ms"]["total"])
                    if phase == "all-hit" and name == "redis":
                        assert response["cover_store"]["hits"] > 0, response["cover_store"]
        indexed_pool = Workload({**workload.spec, "pool": args.requests, "seed": 7}).requests()
        hit_rate = index_then_replay(clients["redis"], indexed_pool)
    p50 = {key: statistics.median(values) for key, values in times.items()}
    covers = sum(1 for c in repeated[0].covers if c)
    print(f"grade store on the online path: {len(repeated[0].candidates)} candidates, {covers} covers "
          f"({2 * covers} grades), engines simulated, {args.requests} requests per phase; time in the BLS, p50")
    print(f"  {'phase':9} {'lru':>9} {'redis':>9} {'none':>9}   added by the store           target <= {TARGET_MS} ms")
    for phase, base in (("all-hit", "lru"), ("all-miss", "none")):
        added = p50[phase, "redis"] - p50[phase, base]
        print(f"  {phase:9} {p50[phase, 'lru']:6.2f} ms {p50[phase, 'redis']:6.2f} ms {p50[phase, 'none']:6.2f} ms"
              f"   {added:+.2f} ms (redis - {base:4})        {'MET' if added <= TARGET_MS else 'NOT MET'}")
    print_capacity(hit_rate)
    return 0


def index_then_replay(client: RerankClient, pool) -> float:
    """Index-time quality grading of the pool's covers, then the pool's requests: the share of their quality
    grades that came from the store."""
    from clients.covers import Summary, grade_batch

    covers = {c for r in pool for c in r.covers if c}
    batch = [(hashlib.blake2b(c, digest_size=16).hexdigest(), c) for c in covers]
    summary = Summary()
    for start in range(0, len(batch), 16):
        grade_batch(client, batch[start:start + 16], summary)
    stored = total = 0
    for r in pool:
        response = client.rerank(r.query, r.candidates, cover_images=r.covers).response
        for grade in response["cover_grades"]:
            if grade["source"]["quality"] in ("store", "model", "model_unusable", "failed"):
                total += 1
                stored += grade["source"]["quality"] == "store"
    print(f"index-time grading: {summary.graded} covers graded, {summary.skipped} already stored; replayed "
          f"{len(pool)} requests: {stored} of {total} quality grades from the store")
    return stored / max(total, 1)


def print_capacity(quality_hit_rate: float) -> None:
    from bench.capacity import measure_tokens, pipeline_calls, pipeline_compute_rps
    from bench.hardware import GPUS

    tokens = measure_tokens(str(ROOT / "bench/workloads/paper.json"))
    print("capacity (bench.capacity, paper workload, thinking 256): compute-bound pipeline requests/s")
    print(f"  {'gpu':5} {'no cache':>9} {'LRU':>9} {'indexed':>9}   (indexed: quality hit rate {quality_hit_rate:.0%} measured "
          "above, relevance as the LRU)")
    for key in ("A10", "A800"):
        gpu = GPUS[key]
        rates = [pipeline_compute_rps(pipeline_calls(tokens, 256, cache), gpu) for cache in (False, True)]
        rates.append(pipeline_compute_rps(pipeline_calls(tokens, 256, True, quality_hit_rate=quality_hit_rate), gpu))
        print(f"  {key:5} " + " ".join(f"{r:9.2f}" for r in rates))


if __name__ == "__main__":
    sys.exit(main())
