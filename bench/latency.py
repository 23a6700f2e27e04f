"""Latency distribution of `rich_media_reranker` over gRPC, from one client to saturation, with the server's own time
for each request beside the client's: what a request waits outside the BLS (queues, scheduler timers) shows as the
difference.

    python -m bench.latency                                   # engines simulated, then the tiny models
    python -m bench.latency --engines simulated --levels 1,2,4 --seconds 10
    python -m bench.latency --baseline /tmp/before            # another revision's checkout, side by side
    python -m bench.latency --compare serving.bls_instances=2 # this checkout with a profile setting changed, too

Clients are closed loops (each sends its next request as soon as the last answered), `--levels` of them at a
time, for `--seconds` per level. The saturation point (marked `*`) is the first level whose throughput is within
10% of the highest measured: past it a client adds no throughput, only a wait in the queue of about
clients / throughput - server time (Little's law), so those rows say `queue` rather than judging them; when
throughput still grew at the last level, a level twice as high is added. Every request of the workload pool is
different and the cover cache and grade store are off, so each request does the whole chain. With `--baseline`
both servers run side by side and every level runs on each in turn, so the comparison is not skewed by the
machine's drift. Prints one table per engine mode and leaves <out>/latency.csv and <out>/latency.png (each
request's client time, and its time outside the BLS, per level).

Targets (issue 26): p99 <= 1.5 x p50 + 20 ms at every level up to saturation, and no request more than 100 ms
above the server's own time for it; each row up to saturation says whether it meets them.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.closed_loop import closed_loop
from bench.runner import ROOT, parse_settings, start_checkout_server, start_cpu_server
from ensemble.config import merged
from clients.rerank_client import RerankClient
from clients.workload import Workload, WorkloadRequest

ENGINE_MODES = {"simulated": "valid", "tiny": ""}
"""--engines name -> the engine slots' `simulate` setting: answers at once as a good model would, or the tiny
random-weight checkpoints computing."""
NO_SHARING = {"pipeline": {"cover_cache": {"enabled": False}, "cover_store": {"url": ""}}}
OUTSIDE_TARGET_MS = 100.0
KNEE = 0.9
"""Saturation: the first level within this fraction of the highest throughput."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Level:
    server: str
    clients: int
    seconds: float
    client_ms: list[float]
    server_ms: list[float]
    errors: int

    @property
    def outside_ms(self) -> list[float]:
        """Per request: the client's time less the BLS's own (`timings_ms.total`)."""
        return [c - s for c, s in zip(self.client_ms, self.server_ms)]

    @property
    def throughput(self) -> float:
        return len(self.client_ms) / self.seconds

    def meets_targets(self) -> bool:
        p50, p99 = percentile(self.client_ms, 0.5), percentile(self.client_ms, 0.99)
        return p99 <= 1.5 * p50 + 20 and max(self.outside_ms) <= OUTSIDE_TARGET_MS

    def row(self, saturated: bool, past: bool) -> str:
        c, o = self.client_ms, self.outside_ms
        verdict = "queue" if past else ("yes" if self.meets_targets() else "NO")
        q = [percentile(c, p) for p in (0.5, 0.9, 0.99, 0.999)]
        return (f"{self.server:10} {self.clients:>4}{'*' if saturated else ' '} {self.throughput:7.1f} "
                + " ".join(f"{v:7.0f}" for v in (*q, max(c)))
                + f" {statistics.median(self.server_ms):7.0f} {percentile(o, 0.99):7.0f} {max(o):7.0f} "
                f"{self.errors:5} {verdict:>5}")


HEADER = (f"{'server':10} {'clients':>5} {'req/s':>7} {'p50':>7} {'p90':>7} {'p99':>7} {'p99.9':>7} {'max':>7} "
          f"{'server':>7} {'out p99':>7} {'out max':>7} {'errs':>5} {'meets':>5}")


def run_level(url: str, name: str, clients: int, seconds: float, pool: list[WorkloadRequest]) -> Level:
    client_ms: list[float] = []
    server_ms: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def call(client: RerankClient, r: WorkloadRequest) -> None:
        started = time.perf_counter()
        try:
            response = client.rerank(r.query, r.candidates, cover_images=r.covers).response
        except Exception:  # noqa: BLE001 - counted, the level goes on
            with lock:
                errors[0] += 1
            return
        with lock:
            client_ms.append((time.perf_counter() - started) * 1000)
            server_ms.append(response["timings_ms"]["total"])

    took = closed_loop(url, pool, clients, seconds, call, join_s=seconds + 300)
    return Level(name, clients, took, client_ms, server_ms, errors[0])


def run_mode(servers: dict[str, str], levels: list[int], seconds: float, pool: list[WorkloadRequest],
             warmup: int = 5) -> dict[str, list[Level]]:
    for url in servers.values():  # first requests load lazily built state (tokenizer caches, torch kernels)
        warm_up(url, pool[:warmup])
    results: dict[str, list[Level]] = {name: [] for name in servers}
    todo = list(levels)
    while todo:
        clients = todo.pop(0)
        for name, url in servers.items():
            results[name].append(run_level(url, name, clients, seconds, pool))
        if not todo:  # still growing at the last level: go on until throughput stops rising
            first = results[next(iter(servers))]
            if len(first) >= 2 and first[-1].throughput > 1.05 * first[-2].throughput and clients < 256:
                todo.append(clients * 2)
    return results


def warm_up(url: str, requests: list[WorkloadRequest]) -> None:
    with RerankClient(url, timeout_s=120) as client:
        for r in requests:
            client.rerank(r.query, r.candidates, cover_images=r.covers)


def saturation(levels: list[Level]) -> Level:
    """The first level within `KNEE` of the highest throughput."""
    best = max(level.throughput for level in levels)
    return next(level for level in levels if level.throughput >= KNEE * best)


def print_table(mode: str, results: dict[str, list[Level]]) -> None:
    print(f"\n{mode} engines: client ms per request (p50 .. max), the BLS's own p50 (`server`), and the client's "
          f"time outside the BLS (`out`); * = saturation (first level within {1 - KNEE:.0%} of the highest req/s); "
          f"`queue`: past saturation, where waiting is the queue of Little's law")
    print(HEADER)
    for levels in results.values():
        knee = saturation(levels)
        for level in levels:
            print(level.row(level is knee, level.clients > knee.clients))


def write_csv(path: Path, rows: list[tuple[str, Level]]) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["engines", "server", "clients", "client_ms", "server_ms"])
        for mode, level in rows:
            for c, s in zip(level.client_ms, level.server_ms):
                out.writerow([mode, level.server, level.clients, f"{c:.2f}", f"{s:.2f}"])


def plot(path: Path, rows: list[tuple[str, Level]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = sorted({mode for mode, _ in rows}, key=list(ENGINE_MODES).index)
    servers = sorted({level.server for _, level in rows})
    figure, axes = plt.subplots(2, len(modes), figsize=(6 * len(modes), 8), squeeze=False)
    for column, mode in enumerate(modes):
        for offset, server in enumerate(servers):
            levels = [level for m, level in rows if m == mode and level.server == server]
            for row, (values, label) in enumerate(((lambda lv: lv.client_ms, "client ms"),
                                                   (lambda lv: lv.outside_ms, "client ms - server ms"))):
                axis = axes[row][column]
                for index, level in enumerate(levels):
                    ys = values(level)
                    xs = [index + 0.35 * (offset - (len(servers) - 1) / 2) + 0.1 * ((k * 7919) % 13 / 13 - 0.5)
                          for k in range(len(ys))]
                    axis.scatter(xs, ys, s=4, alpha=0.4, color=f"C{offset}", label=server if index == 0 else None)
                axis.set_xticks(range(len(levels)), [str(level.clients) for level in levels])
                axis.set_xlabel("concurrent clients")
                axis.set_ylabel(label)
                axis.set_yscale("symlog", linthresh=10)
                axis.set_title(f"{mode} engines: {label}")
                if row == 1:
                    axis.axhline(OUTSIDE_TARGET_MS, color="grey", linestyle="--", linewidth=0.8)
        axes[0][column].legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,2,4,8,16", help="concurrent clients per level")
    parser.add_argument("--seconds", type=float, default=15.0, help="per level and server")
    parser.add_argument("--engines", default="simulated,tiny", help=f"engine modes: {', '.join(ENGINE_MODES)}")
    parser.add_argument("--workload", default=str(ROOT / "bench/workloads/paper.json"))
    parser.add_argument("--baseline", type=Path, help="a checkout of another revision, served side by side")
    parser.add_argument("--compare", action="append", default=[], metavar="KEY=VALUE",
                        help="also serve this checkout with these cpu-profile settings, side by side (repeatable; "
                             "e.g. serving.bls_instances=2)")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/latency")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.engines.split(",") if m.strip()]
    unknown = [m for m in modes if m not in ENGINE_MODES]
    if unknown:
        parser.error(f"--engines: unknown mode(s) {unknown}; choose from {list(ENGINE_MODES)}")
    levels = [int(n) for n in args.levels.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    pool = Workload.load(args.workload).requests()
    rows: list[tuple[str, Level]] = []
    for mode in modes:
        with ExitStack() as stack:
            work = args.out / mode
            servers = {"this": stack.enter_context(
                start_cpu_server(args.cache, ENGINE_MODES[mode], work / "this", overrides=NO_SHARING))}
            if args.compare:
                variant = merged(NO_SHARING, parse_settings(args.compare))
                servers["compare"] = stack.enter_context(
                    start_cpu_server(args.cache, ENGINE_MODES[mode], work / "compare", overrides=variant))
            if args.baseline:
                servers["baseline"] = stack.enter_context(start_checkout_server(
                    args.baseline, args.cache, ENGINE_MODES[mode], work / "baseline", overrides=NO_SHARING))
            urls = {name: f"127.0.0.1:{server.options.grpc_port}" for name, server in servers.items()}
            print(f"{mode}: serving on {urls}", file=sys.stderr, flush=True)
            results = run_mode(urls, levels, args.seconds, pool)
        print_table(mode, results)
        rows += [(mode, level) for server_levels in results.values() for level in server_levels]
    write_csv(args.out / "latency.csv", rows)
    plot(args.out / "latency.png", rows)
    print(f"\nper request: {args.out / 'latency.csv'}; picture: {args.out / 'latency.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
