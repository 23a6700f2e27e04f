"""Redis goes away in the middle of a load, and comes back: no request may fail, latency must return to the
no-store level, and store hits must resume without a restart.

One server (engine slots simulated `valid`, the LRU off so that every grade goes through the store) under
`--users` concurrent users cycling through a pool of requests; Redis is stopped after a third of the run and
started again (same port, empty) after two thirds. Per phase: requests, failures, p50 / p95 time in the BLS,
and where the quality grades came from. `--no-store` runs the same load on a server without a store, for the
level the outage is compared with.

    python -m bench.store_outage [--seconds 30] [--users 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench.runner import ROOT, start_cpu_server
from clients.rerank_client import RerankClient, RerankError
from clients.workload import Workload
from ensemble.names import STORE_URL_ENV
from store.local_redis import RedisServer

PHASES = ("before", "redis down", "redis back")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--cache", default=str(ROOT / ".cache"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/store_outage")
    parser.add_argument("--no-store", action="store_true", help="the same load, no store at all (one phase)")
    args = parser.parse_args(argv)
    pool = Workload({**Workload.load(ROOT / "bench/workloads/overhead.json").spec, "pool": 12}).requests()
    redis = RedisServer(Path(tempfile.mkdtemp(prefix="rmr-redis-"))).start()
    if not args.no_store:
        os.environ[STORE_URL_ENV] = redis.url
    try:
        pipeline = {"cover_cache": {"enabled": False}, "cover_store": {"url": ""}}  # RMR_STORE_URL names Redis
        server = start_cpu_server(Path(args.cache), "valid", args.out, overrides={"pipeline": pipeline})
        server.__enter__()
    finally:
        os.environ.pop(STORE_URL_ENV, None)
    phase = [PHASES[0]]
    results: list[tuple[str, float | None, Counter]] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + args.seconds

    def user(k: int) -> None:
        with RerankClient(server.options.grpc_url, timeout_s=60) as client:
            i = k
            while time.monotonic() < stop_at:
                r = pool[i % len(pool)]
                i += 1
                now = phase[0]
                try:
                    response = client.rerank(r.query, r.candidates, cover_images=r.covers).response
                    row = (now, response["timings_ms"]["total"],
                           Counter(g["source"]["quality"] for g in response["cover_grades"]))
                except RerankError as error:
                    row = (now, None, Counter({error.status: 1}))
                with lock:
                    results.append(row)

    try:
        threads = [threading.Thread(target=user, args=(k,)) for k in range(args.users)]
        for t in threads:
            t.start()
        if args.no_store:
            phase[0] = "no store"
            for t in threads:
                t.join()
        else:
            time.sleep(args.seconds / 3)
            redis.stop()
            phase[0] = PHASES[1]
            time.sleep(args.seconds / 3)
            redis.start()
            phase[0] = PHASES[2]
            for t in threads:
                t.join()
    finally:
        server.__exit__(None, None, None)
        redis.stop()
    print(f"store outage under load: {args.users} users for {args.seconds:.0f} s, engines simulated, LRU off; "
          "Redis stopped at 1/3, started again (empty) at 2/3")
    print(f"  {'phase':11} {'requests':>8} {'failed':>6} {'p50 ms':>7} {'p95 ms':>7}  quality grades from")
    for name in ("no store",) if args.no_store else PHASES:
        rows = [r for r in results if r[0] == name]
        ok = sorted(t for _, t, _ in rows if t is not None)
        sources = sum((c for _, t, c in rows if t is not None), Counter())
        p50 = statistics.median(ok) if ok else float("nan")
        p95 = ok[int(0.95 * (len(ok) - 1))] if ok else float("nan")
        print(f"  {name:11} {len(rows):>8} {len(rows) - len(ok):>6} {p50:>7.1f} {p95:>7.1f}  {dict(sources)}")
    return 1 if any(t is None for _, t, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
