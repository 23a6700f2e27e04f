"""What a ranking mode costs on this machine: the `rich_media_reranker` re-rank of n candidates in one listwise
call, in sliding windows (`[rerank_window]`), by pointwise grade alone (options.pointwise "rank") and with the
pointwise grades as a listwise signal ("signal", windows past 20), on the CPU target with the tiny checkpoints
(real generation, not simulated), one request at a time, the modes taking turns per request. Covers are off.

For each n: the client's p50 latency, the text engine's requests and sequences per request (Triton's statistics
of `reranker_llm`: the pointwise pairs of a request go out as one request of n sequences on this slot, as n
requests on the C++ tensorrtllm slot) and its mean time per request (queue and compute), after one untimed
request. Set beside `python -m bench.capacity` (the GPU bounds of the same modes): the sequences per request
must match its calls; the seconds are the tiny model's, not a GPU's.

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
        windows = f"windows {window.size}/{window.stride}"
        modes = {"one listwise call": (o_server, {}), windows: (w_server, {}),
                 "pointwise rank": (w_server, {"pointwise": "rank"}),
                 "pointwise signal": (w_server, {"pointwise": "signal"})}
        print(f"ranking modes on the CPU target (tiny checkpoints), {args.requests} requests per size and mode, "
              "covers off; modes take turns per request\n")
        print(f"{'n':>4}  {'mode':22} {'requests/req':>12} {'seqs/req':>8} {'expected':>8} {'p50 ms':>8} "
              f"{'engine ms/req':>13}")
        for n in (int(x) for x in args.sizes.split(",")):
            candidates = candidates_of(n)
            times: dict[str, list[float]] = {mode: [] for mode in modes}
            stats = {}
            for mode, (server, options) in modes.items():
                client = RerankClient(server.options.grpc_url, timeout_s=600)
                # a first request of this length and mode (its shapes, the allocator) is not timed
                client.rerank(f"warm {n}", candidates, options={"evaluate_covers": False, **options})
                client.close()
            for i in range(args.requests):
                for mode, (server, options) in modes.items():
                    with RerankClient(server.options.grpc_url, timeout_s=600) as client:
                        before = snapshot(server.options.grpc_url)
                        started = time.perf_counter()
                        client.rerank(f"北京旅游 {n} {i}", candidates, options={"evaluate_covers": False, **options})
                        times[mode].append((time.perf_counter() - started) * 1000)
                        used = diff(snapshot(server.options.grpc_url), before)[names.LLM_ENGINE]
                    stats[mode] = used if mode not in stats else stats[mode] + used
            k = window_count(n, window.size, window.stride)
            expected = {"one listwise call": 1, windows: k, "pointwise rank": n, "pointwise signal": n + k}
            for mode in modes:
                s = stats[mode]
                engine = (s.queue_ns + s.compute_ns) / args.requests / 1e6
                print(f"{n:>4}  {mode:22} {s.requests / args.requests:>12.1f} {s.inferences / args.requests:>8.1f} "
                      f"{expected[mode]:>8} {statistics.median(times[mode]):>8.0f} {engine:>13.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
