"""What a ranking mode costs on this machine: the `rich_media_reranker` re-rank of n candidates in one listwise
call against sliding windows (`[rerank_window]`), on the CPU target with the tiny checkpoints (real generation,
not simulated), one request at a time, the modes taking turns per request. Covers are off: the re-rank alone.

For each n: the client's p50 latency, engine calls per request (the `reranker_llm` slot's requests in Triton's
statistics) and the re-rank engine's mean time per request (queue and compute), after one untimed request. Set
beside `python -m bench.capacity` (the GPU bounds of the same modes): the calls per request must match; the
seconds are the tiny model's, not a GPU's.

    python -m bench.ranking_modes [--sizes 20,60,100] [--requests 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from bench.runner import ROOT, start_cpu_server
from bench.triton_stats import diff, snapshot
from clients.rerank_client import RerankClient
from clients.workload import Workload
from ensemble import names
from ensemble.config import PipelineConfig
from ensemble.rerank.window import window_count

ONE_CALL = {"rerank_window": {"size": 200, "stride": 200}}
"""One listwise call however long the list (the window as large as a request may be)."""
OVERRIDES = {"pipeline": {"limits": {"max_window_candidates": 200}, "cover_cache": {"enabled": False},
                          "generation": {"rerank": {"max_input_len": 32768}}}}
"""Room for a 100-candidate prompt untrimmed (the tiny model's context is 32 k), so one call reads it all."""


def candidates_of(n: int) -> list[dict]:
    pool = [c for r in Workload.load(ROOT / "bench/workloads/long_lists.json").requests() for c in r.candidates]
    return [{**pool[i % len(pool)], "id": f"d{i}"} for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20,60,100")
    parser.add_argument("--requests", type=int, default=6, help="per size and mode")
    parser.add_argument("--cache", default=str(ROOT / ".cache"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/ranking_modes")
    args = parser.parse_args(argv)
    one_call = {"pipeline": {**OVERRIDES["pipeline"], **ONE_CALL}}
    window = PipelineConfig.load().rerank_window
    with start_cpu_server(Path(args.cache), "", args.out / "windows", overrides=OVERRIDES) as w_server, \
            start_cpu_server(Path(args.cache), "", args.out / "one", overrides=one_call) as o_server:
        servers = {"one listwise call": o_server, f"windows {window.size}/{window.stride}": w_server}
        print(f"ranking modes on the CPU target (tiny checkpoints), {args.requests} requests per size and mode, "
              "covers off; modes take turns per request\n")
        print(f"{'n':>4}  {'mode':22} {'calls/req':>9} {'expected':>8} {'p50 ms':>8} {'engine ms/req':>13}")
        for n in (int(x) for x in args.sizes.split(",")):
            candidates = candidates_of(n)
            times: dict[str, list[float]] = {mode: [] for mode in servers}
            clients = {mode: RerankClient(s.options.grpc_url, timeout_s=600) for mode, s in servers.items()}
            for client in clients.values():  # a first request of this length (its shapes, the allocator) is not timed
                client.rerank(f"warm {n}", candidates, options={"evaluate_covers": False})
            before = {mode: snapshot(s.options.grpc_url) for mode, s in servers.items()}
            for i in range(args.requests):
                for mode, client in clients.items():
                    started = time.perf_counter()
                    client.rerank(f"北京旅游 {n} {i}", candidates, options={"evaluate_covers": False})
                    times[mode].append((time.perf_counter() - started) * 1000)
            for mode, server in servers.items():
                stats = diff(snapshot(server.options.grpc_url), before[mode])[names.LLM_ENGINE]
                calls = stats.requests / args.requests
                expected = 1 if mode == "one listwise call" else window_count(n, window.size, window.stride)
                engine = (stats.queue_ns + stats.compute_ns) / args.requests / 1e6
                print(f"{n:>4}  {mode:22} {calls:>9.1f} {expected:>8} {statistics.median(times[mode]):>8.0f} "
                      f"{engine:>13.0f}")
                clients[mode].close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
