"""Is the T+1 driver ever the bottleneck? The job's throughput against the same server driven directly, in one run.

Engines are simulated (`valid`: instant, well-formed answers) and the server keeps no grades (LRU and store off),
so every query costs the server the same in both passes and the driver's own overhead shows:
- direct: `--actors` processes (not threads: one process's GIL would be the bottleneck), each with its own gRPC
  client and index, run the same chain (plan, retrieval, C(Q), re-rank) over the day's queries as fast as the
  server answers them, all starting at one instant: the server's saturated rate for this work;
- job: `rmr batch` on a local Ray (`--num-cpus`) with `--actors` actors over the same queries (a fresh result store).
Ray's start-up is reported apart, and so is the job's own start (version probe, index, Ray Data planning,
actors): its rate is taken from its first result to its last. With `--servers 2` the job also runs over two
servers and prints how it spread its queries.

    python -m bench.batch_throughput [--queries 120] [--actors 4] [--servers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import multiprocessing
import statistics
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from bench.runner import ROOT, start_cpu_server
from clients.batch.chain import Chain, parse_line
from clients.batch.job import JobOptions, run_job
from clients.batch.retrieval import LocalIndex
from clients.batch.sample import make_sample_day
from clients.rerank_client import RerankClient

TARGET = 0.9
NO_GRADES_KEPT = {"pipeline": {"cover_cache": {"enabled": False}, "cover_store": {"url": ""}}}


def _direct_worker(endpoint: str, lines: list[str], corpus: str, barrier) -> tuple[float, float]:
    chain = Chain(LocalIndex(Path(corpus)), k=10)
    parsed = [parse_line(line) for line in lines]
    with RerankClient(endpoint, timeout_s=120) as client:
        barrier.wait()  # every process has imported and indexed
        started = time.time()
        for line in parsed:
            chain(client, line)
        return started, time.time()


def direct(endpoint: str, lines: list[str], corpus: Path, actors: int) -> float:
    """Queries/s of `actors` processes running the chain directly against one endpoint, from a common start."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(actors, mp_context=context) as pool:
        barrier = manager.Barrier(actors)
        spans = list(pool.map(_direct_worker, [endpoint] * actors, [lines[i::actors] for i in range(actors)],
                              [str(corpus)] * actors, [barrier] * actors))
    return len(lines) / (max(end for _, end in spans) - min(start for start, _ in spans))


def job(endpoints: tuple[str, ...], log: Path, corpus: Path, folder: Path, actors: int, num_cpus: int,
        batch_size: int, round_: int = 0):
    options = JobOptions(log, f"sqlite:///{folder}/results-{len(endpoints)}-{round_}.sqlite", endpoints, corpus=corpus,
                         dead_letters=folder / "dead.jsonl", actors=actors, num_cpus=num_cpus, store_base=folder,
                         batch_size=batch_size)
    started = time.perf_counter()
    summary = run_job(options, progress=False)
    return summary, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=120)
    parser.add_argument("--actors", type=int, default=4)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--servers", type=int, default=2, choices=(1, 2))
    parser.add_argument("--batch-size", type=int, default=16, help="queries per Ray Data batch")
    parser.add_argument("--rounds", type=int, default=3, help="direct and job alternate; medians are reported")
    parser.add_argument("--cache", default=str(ROOT / ".cache"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/batch_throughput")
    args = parser.parse_args(argv)
    import ray

    folder = Path(tempfile.mkdtemp(prefix="rmr-day-"))
    log, corpus = make_sample_day(folder, workload=ROOT / "bench/workloads/overhead.json", queries=args.queries,
                                  distinct=True)
    lines = [line for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    with ExitStack() as stack:
        servers = [stack.enter_context(start_cpu_server(Path(args.cache), "valid", args.out / f"server{i}",
                                                        overrides=NO_GRADES_KEPT)) for i in range(args.servers)]
        endpoints = tuple(s.options.grpc_url for s in servers)
        direct(endpoints[0], lines[: 2 * args.actors], corpus, args.actors)  # warm the server
        started = time.perf_counter()
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray_start = time.perf_counter() - started
        directs, rates, starts = [], [], []
        for round_ in range(args.rounds):  # interleaved: this VM's speed drifts within minutes
            directs.append(direct(endpoints[0], lines, corpus, args.actors))
            one, one_s = job(endpoints[:1], log, corpus, folder, args.actors, args.num_cpus, args.batch_size, round_)
            rates.append(one.steady_rate)
            starts.append(one_s - len(lines) / one.steady_rate)
        saturated, rate = statistics.median(directs), statistics.median(rates)
        print(f"rounds: direct {[round(d, 1) for d in directs]}, job {[round(r, 1) for r in rates]} queries/s")
        two = (job(endpoints, log, corpus, folder, args.actors, args.num_cpus, args.batch_size)
               if len(endpoints) > 1 else None)
    ray.shutdown()
    overhead_ms = (args.actors / rate - args.actors / saturated) * 1000
    print(f"\nT+1 driver against the server's own rate: {len(lines)} queries (plan, BM25 retrieval, C(Q), re-rank), "
          f"engines simulated, {args.actors} concurrent clients, Ray on {args.num_cpus} CPUs")
    print(f"  {'driver':34} {'queries/s':>9}")
    print(f"  {'processes, the chain directly':34} {saturated:9.2f}")
    print(f"  {'rmr batch on Ray (one server)':34} {rate:9.2f}   {rate / saturated:.0%} of direct "
          f"(target >= {TARGET:.0%}: {'MET' if rate >= TARGET * saturated else 'NOT MET'}); "
          f"Ray's cost per query and actor {overhead_ms:+.1f} ms; apart: Ray start-up {ray_start:.1f} s, "
          f"the job's start {statistics.median(starts):.1f} s")
    if two is not None:
        summary, seconds = two
        print(f"  {'rmr batch on Ray (two servers)':34} {summary.steady_rate:9.2f}   per endpoint: "
              f"{dict(summary.endpoints)} (both servers share this machine's 2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
