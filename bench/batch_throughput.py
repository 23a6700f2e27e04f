"""Is the T+1 driver ever the bottleneck? The job's throughput against the same server saturated under locust,
in one run.

Engines are simulated (`valid`: instant, well-formed answers) and the server keeps no grades (LRU and store off),
so every query costs the server the same in both passes and the driver's own overhead shows:
- locust: `clients/locustfile.py --day`, whose users run the job's own chain (plan, BM25 retrieval, C(Q),
  re-rank with covers) over the day's queries, at `--actors` users and at twice that; the higher rate is the
  server's saturated rate on this work;
- job: `rmr batch` on a local Ray (`--num-cpus`) with `--actors` actors over the same queries (a fresh result
  store each round), its rate taken while every actor is at work (Ray's start-up, the version probe, the index,
  Ray Data's planning, the actors' ramp and the last blocks' tail are reported apart: a day's job is hours long).
By default the servers run on half the cores and the drivers on the other half, as a T+1 driver and its GPU
servers do not share CPUs in production (`--shared-cores` to share them).
Both drivers share this machine's cores with the server, so their CPU per query is the other half of the answer:
locust's process, against Ray's (actors, driver, raylet, GCS). Ray's overhead per query is stated three ways:
wall time an actor spends outside the chain, the job's rate deficit, and client CPU over locust's.
With `--servers 2` the job also runs over two servers and prints how it spread its queries.

    python -m bench.batch_throughput [--queries 3000] [--actors 2] [--concurrency 4] [--servers 2] [--rounds 3] [--shared-cores]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.runner import ROOT, run_locust, start_cpu_server
from clients.batch.job import JobOptions, Summary, run_job
from clients.batch.sample import make_sample_day

TARGET = 0.9
NO_GRADES_KEPT = {"pipeline": {"cover_cache": {"enabled": False}, "cover_store": {"url": ""}}}


@dataclass(frozen=True)
class Pass:
    rate: float
    """queries/s"""
    client_cpu_ms: float
    """the driver's CPU per query in its steady state (all its processes; start-up left out)"""
    top: tuple[tuple[str, float], ...] = ()
    """job only: the processes that spent the most CPU per query (ms), in the steady window"""
    outside_chain_ms: float = float("nan")
    """job only: a query slot's wall time per query outside the chain (actors x concurrency slots)"""
    store_ms: float = float("nan")
    """job only: of which writing the result"""


class CpuSampler:
    """Samples the CPU seconds of a set of processes four times a second, so a steady window can be cut out of a
    run afterwards: start-up (imports, the index, Ray Data's planning) costs once a job, not per query."""

    def __init__(self, processes) -> None:
        self.processes = processes
        self.samples: list[tuple[float, dict[int, float]]] = []
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            seen = {}
            for process in self.processes():
                try:
                    times = process.cpu_times()
                    seen[process.pid] = times.user + times.system
                    if process.pid not in self.names:
                        self.names[process.pid] = " ".join(process.cmdline()[:3])[-50:] or process.name()
                except psutil.Error:
                    pass
            self.samples.append((time.time(), seen))
            self._stop.wait(0.25)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> float:
        """CPU seconds spent from `start` to `end` (Unix times): per process, from its first sample inside the
        window to its last, so a process started in the window brings none of its start-up."""
        spent = self.by_process(start, end)
        return sum(spent.values()) if spent else float("nan")

    def by_process(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds in the window by process name (processes of one name added up)."""
        first: dict[int, float] = {}
        last: dict[int, float] = {}
        for t, seen in self.samples:
            if start <= t <= end:
                for pid, cpu in seen.items():
                    first.setdefault(pid, cpu)
                    last[pid] = cpu
        out: dict[str, float] = {}
        for pid in last:
            name = self.names.get(pid, str(pid))
            out[name] = out.get(name, 0.0) + last[pid] - first[pid]
        return out


def _tree(root, servers):
    """`root` and its descendants, less the Triton servers this benchmark started (and their stubs)."""
    def processes():
        import psutil

        try:
            excluded = {p.pid for s in servers for p in [s, *s.children(recursive=True)]}
            return [p for p in [root, *root.children(recursive=True)] if p.pid not in excluded]
        except psutil.Error:
            return []
    return processes


def under_locust(endpoint: str, users: int, seconds: int, day: Path, corpus: Path, prefix: Path) -> Pass:
    import psutil

    def locusts():
        return [p for p in psutil.process_iter(["cmdline"]) if "locust" in " ".join(p.info["cmdline"] or [])]

    with CpuSampler(locusts) as cpu:
        row = run_locust(endpoint, users, seconds, "bench/workloads/smoke.json", "rich_media_reranker=1", prefix,
                         extra=("--day", str(day), "--corpus", str(corpus)))
        ended = time.time()
    if int(row["Failure Count"]):
        print(f"  locust at {users} users: {row['Failure Count']} failed chains (see {prefix}_failures.csv)")
    rate = float(row["Requests/s"])
    window = (ended - seconds + LOCUST_WARM_S, ended - 1.0)  # the load phase, its first seconds left out
    return Pass(rate, cpu.between(*window) / (rate * (window[1] - window[0])) * 1000)


LOCUST_WARM_S = 3.0


def as_job(endpoints: tuple[str, ...], log: Path, corpus: Path, folder: Path, actors: int, concurrency: int,
           num_cpus: int, batch_size: int, name: str, servers: list) -> tuple[Summary, Pass, float]:
    import psutil

    options = JobOptions(log, f"sqlite:///{folder}/results-{name}.sqlite", endpoints, corpus=corpus,
                         dead_letters=folder / "dead.jsonl", actors=actors, concurrency=concurrency,
                         num_cpus=num_cpus, store_base=folder, batch_size=batch_size)
    rows: list[dict] = []
    with CpuSampler(_tree(psutil.Process(), servers)) as cpu:  # this driver, raylet, GCS and the actors
        started = time.perf_counter()
        summary = run_job(options, progress=False, on_row=rows.append)
        seconds = time.perf_counter() - started
    done = [r for r in rows if r["status"] == "done"]
    # Steady state: while every actor is at work, from the last actor's first result to the first actor's last.
    # The ramp (actors starting) and the tail (the last blocks, actors running out of work) are a job's start
    # and end, a few seconds a job whatever its length; a day's job is hours long.
    firsts, lasts = {}, {}
    for row in done:
        firsts.setdefault(row["worker"], row["finished_at"])
        lasts[row["worker"]] = row["finished_at"]
    begin, end = max(firsts.values()), min(lasts.values())
    inside = [r for r in done if begin < r["finished_at"] <= end]
    n = max(len(inside), 1)
    rate = len(inside) / (end - begin) if end > begin else float("nan")
    client_cpu_ms = cpu.between(begin, end) / n * 1000
    outside_ms = (actors * concurrency * (end - begin) - sum(r["chain_s"] for r in inside)) / n * 1000
    spent = cpu.by_process(begin, end)
    top = tuple(sorted(((name, v / n * 1000) for name, v in spent.items()), key=lambda x: -x[1])[:4])
    return (summary, Pass(rate, client_cpu_ms, top, outside_ms, sum(r["store_s"] for r in inside) / n * 1000),
            seconds - len(done) / rate if rate else float("nan"))


def pin(servers) -> str:
    """The servers' whole process trees on the first half of the cores, this process (and so every driver it
    starts: locust, Ray's daemons and actors) on the rest. Both drivers get the same cores."""
    import psutil

    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return "one core: drivers and servers share it"
    server_cores, driver_cores = cores[: len(cores) // 2], cores[len(cores) // 2:]
    for root in servers:
        for process in [root, *root.children(recursive=True)]:
            try:
                process.cpu_affinity(server_cores)
            except psutil.Error:
                pass
    os.sched_setaffinity(0, driver_cores)
    return f"servers on cores {server_cores}, drivers on {driver_cores}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=3000, help="enough for the job to run well past its ramp")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="queries in flight per actor")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--servers", type=int, default=2, choices=(1, 2))
    parser.add_argument("--batch-size", type=int, default=JobOptions.batch_size, help="queries per Ray Data batch")
    parser.add_argument("--rounds", type=int, default=3, help="locust and the job alternate; medians are reported")
    parser.add_argument("--locust-seconds", type=int, default=15)
    parser.add_argument("--shared-cores", action="store_true",
                        help="let the drivers share every core with the server (default: the server's processes "
                        "on half the cores, the drivers on the rest, as a driver and its GPU servers are in production)")
    parser.add_argument("--cache", default=str(ROOT / ".cache"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/batch_throughput")
    args = parser.parse_args(argv)
    import psutil
    import ray

    args.out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="rmr-day-"))
    log, corpus = make_sample_day(folder, workload=ROOT / "bench/workloads/overhead.json", queries=args.queries,
                                  distinct=True)
    users = (args.actors * args.concurrency, 2 * args.actors * args.concurrency)
    with ExitStack() as stack:
        servers = [stack.enter_context(start_cpu_server(Path(args.cache), "valid", args.out / f"server{i}",
                                                        overrides=NO_GRADES_KEPT)) for i in range(args.servers)]
        endpoints = tuple(s.options.grpc_url for s in servers)
        server_processes = [psutil.Process(s.process.pid) for s in servers]
        placement = "" if args.shared_cores else pin(server_processes)
        under_locust(endpoints[0], args.actors, 5, log, corpus, args.out / "warm")
        started = time.perf_counter()
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray_start = time.perf_counter() - started
        locusts: dict[int, list[Pass]] = {u: [] for u in users}
        jobs: list[Pass] = []
        job_starts = []
        for round_ in range(args.rounds):  # interleaved: this VM's speed drifts within minutes
            for u in users:
                locusts[u].append(under_locust(endpoints[0], u, args.locust_seconds, log, corpus,
                                               args.out / f"locust_u{u}_r{round_}"))
            _, one, start_s = as_job(endpoints[:1], log, corpus, folder, args.actors, args.concurrency,
                                     args.num_cpus, args.batch_size, f"one-{round_}", server_processes)
            jobs.append(one)
            job_starts.append(start_s)
            print(f"round {round_ + 1}: locust " + ", ".join(f"{u} users {locusts[u][-1].rate:.1f}" for u in users)
                  + f"; job {one.rate:.1f} queries/s", flush=True)
        two = (as_job(endpoints, log, corpus, folder, args.actors, args.concurrency, args.num_cpus,
                      args.batch_size, "two", server_processes)
               if len(endpoints) > 1 else None)
    ray.shutdown()

    def median(passes: list[Pass], key: str) -> float:
        return statistics.median(getattr(p, key) for p in passes)

    saturated_users = max(users, key=lambda u: median(locusts[u], "rate"))
    saturated = median(locusts[saturated_users], "rate")
    rate = median(jobs, "rate")
    print(f"\nT+1 driver against the server saturated under locust: {len(log.read_text().splitlines())} queries "
          f"(plan, BM25 retrieval, C(Q), re-rank), engines simulated, Ray on {args.num_cpus} CPUs, "
          f"medians of {args.rounds} interleaved rounds; {placement or 'drivers and servers share every core'}")
    print(f"  {'driver':34} {'queries/s':>9} {'client CPU ms/query':>20}   (steady state: start-up left out)")
    for u in users:
        print(f"  {f'locust, {u} users':34} {median(locusts[u], 'rate'):9.2f} {median(locusts[u], 'client_cpu_ms'):20.1f}")
    print(f"  {f'rmr batch, {args.actors} actors x {args.concurrency}':34} {rate:9.2f} "
          f"{median(jobs, 'client_cpu_ms'):20.1f}")
    verdict = "MET" if rate >= TARGET * saturated else "NOT MET"
    print(f"\n  job / saturated ({saturated_users} users): {rate / saturated:.0%} (target >= {TARGET:.0%}: {verdict})")
    print(f"  Ray's overhead per query: {median(jobs, 'outside_chain_ms'):.1f} ms of a query slot's wall time outside "
          f"the chain (of which {median(jobs, 'store_ms'):.1f} ms writing the result, which locust does not); {(1 / rate - 1 / saturated) * 1000:+.1f} ms of the job's wall time per query against "
          f"saturation; {median(jobs, 'client_cpu_ms') - median(locusts[saturated_users], 'client_cpu_ms'):+.1f} ms "
          f"of client CPU over locust's")
    print("  the job's client CPU per query by process (last round): "
          + "; ".join(f"{name.strip()} {ms:.1f} ms" for name, ms in jobs[-1].top))
    print(f"  apart: Ray start-up {ray_start:.1f} s; the job's set-up, ramp and tail {statistics.median(job_starts):.1f} s")
    if two is not None:
        summary, both, _ = two
        print(f"  two servers: {both.rate:.2f} queries/s, per endpoint {dict(summary.endpoints)} "
              f"(both servers share this machine's cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
