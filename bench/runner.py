"""Throughput/latency ladder: locust over gRPC at rising concurrency, with Triton's per-model time per request.

    python -m bench.runner                                   # starts a CPU server with the tiny models
    python -m bench.runner --url 127.0.0.1:8001 --ladder 1,4,16,64 --step-seconds 60   # an existing server

Per step it prints requests/s, p50/p95/p99 latency and errors (locust), and for every model of the pipeline its
queue and compute milliseconds per top-level request (Triton statistics, diffed around the step), so the cost
of pre/post/BLS steps sits next to the engines'. Leaves <out>/ladder.csv and <out>/ladder.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.triton_stats import diff, is_wait, snapshot
from ensemble import names

ROOT = Path(__file__).resolve().parent.parent
ENGINE_SLOTS = names.ENGINE_SLOTS
CONTAINERS = names.ENTRY_POINTS
"""Ensembles and the BLS: their time contains their steps' time, so they are never stacked with them."""


@dataclass(frozen=True)
class Step:
    concurrency: int
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    per_model_ms: dict[str, tuple[float, float]]
    """model -> (queue ms, compute ms) per top-level request."""


def run_locust(url: str, users: int, seconds: int, workload: str, weights: str, prefix: Path,
               extra: tuple[str, ...] = ()) -> dict[str, str]:
    """locust's aggregated stats row; `extra`: more locustfile options (e.g. --day, --corpus)."""
    command = [sys.executable, "-m", "locust", "-f", str(ROOT / "clients" / "locustfile.py"), "--headless",
               "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", url, "--csv", str(prefix),
               "--only-summary", "--stop-timeout", "120", "--loglevel", "WARNING", "--workload", workload,
               "--weights", weights, "--exit-code-on-error", "0", *extra]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 300)
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed it; say so instead of a traceback
        raise RuntimeError(f"locust ran {exc.timeout:.0f} s past a {seconds} s step and was killed; its output:\n"
                           f"{(exc.stderr or b'')[-2000:]!r}") from None
    if done.returncode != 0:
        raise RuntimeError(f"locust failed ({done.returncode}):\n{done.stderr[-2000:]}")
    with open(f"{prefix}_stats.csv", newline="") as fh:
        rows = [row for row in csv.DictReader(fh) if row["Name"] == "Aggregated"]
    return rows[0]


def measure(url: str, concurrency: int, seconds: int, workload: str, weights: str, out: Path,
            metrics_url: str | None = None) -> Step:
    before = snapshot(url, metrics_url)
    row = run_locust(url, concurrency, seconds, workload, weights, out / f"locust_c{concurrency}")
    delta = diff(snapshot(url, metrics_url), before)
    top = max(int(row["Request Count"]) - int(row["Failure Count"]), 1)
    per_model = {name: (s.queue_ns / top / 1e6, s.compute_ns / top / 1e6)
                 for name, s in sorted(delta.items()) if s.requests}

    def ms(key: str) -> float:
        return float(row[key]) if row[key] not in ("N/A", "") else float("nan")

    return Step(concurrency, int(row["Request Count"]), int(row["Failure Count"]), float(row["Requests/s"]),
                ms("50%"), ms("95%"), ms("99%"), per_model)


def table(steps: list[Step]) -> str:
    models = sorted({m for s in steps for m in s.per_model_ms})
    head = f"{'conc':>4} {'req':>5} {'err':>4} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
    lines = [head, "-" * len(head)]
    for s in steps:
        lines.append(f"{s.concurrency:>4} {s.requests:>5} {s.failures:>4} {s.rps:>7.2f} {s.p50_ms:>8.0f} "
                     f"{s.p95_ms:>8.0f} {s.p99_ms:>8.0f}")
    lines.append("")
    lines.append("per top-level request, ms (queue + compute) by model:")
    lines.append(f"{'model':32}" + "".join(f"{'c=' + str(s.concurrency):>18}" for s in steps))
    for model in models:
        cells = []
        for s in steps:
            q, c = s.per_model_ms.get(model, (0.0, 0.0))
            cells.append(f"{q:>8.1f} + {c:>7.1f}")
        tag = " (engine)" if model in ENGINE_SLOTS else " (total)" if model in CONTAINERS else ""
        lines.append(f"{model + tag:32}" + "".join(f"{cell:>18}" for cell in cells))
    return "\n".join(lines)


def write_csv(steps: list[Step], path: Path) -> None:
    models = sorted({m for s in steps for m in s.per_model_ms})
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["concurrency", "requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms"]
                        + [f"{m}_{k}_ms" for m in models for k in ("queue", "compute")])
        for s in steps:
            writer.writerow([s.concurrency, s.requests, s.failures, f"{s.rps:.3f}", s.p50_ms, s.p95_ms, s.p99_ms]
                            + [f"{v:.3f}" for m in models for v in s.per_model_ms.get(m, (0.0, 0.0))])


def plot(steps: list[Step], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conc = [s.concurrency for s in steps]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.plot(conc, [s.rps for s in steps], "o-", color="tab:blue", label="requests/s")
    left.set_xlabel("concurrent users")
    left.set_ylabel("requests/s", color="tab:blue")
    twin = left.twinx()
    twin.plot(conc, [s.p95_ms for s in steps], "s--", color="tab:red", label="p95 latency")
    twin.set_ylabel("p95 latency (ms)", color="tab:red")
    left.set_title("throughput and p95 against concurrency")
    # Totals would count their parts twice: containers, and engine calls as the BLS waits for them.
    models = sorted(m for m in {m for s in steps for m in s.per_model_ms} if m not in CONTAINERS and not is_wait(m))
    bottom = [0.0] * len(steps)
    positions = range(len(steps))
    for model in models:
        values = [sum(s.per_model_ms.get(model, (0.0, 0.0))) for s in steps]
        right.bar(positions, values, bottom=bottom, label=model)
        bottom = [b + v for b, v in zip(bottom, values)]
    right.set_xticks(list(positions), [f"c={c}" for c in conc])
    right.set_ylabel("ms per request (queue + compute, summed over calls)")
    right.set_title("where the time goes, per model")
    right.legend(fontsize=7, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an existing server's gRPC address (loopback); default: start one")
    parser.add_argument("--metrics-url", help="with --url: its metrics endpoint (http://127.0.0.1:8002/metrics), "
                        "for the time of the steps the BLS runs itself")
    parser.add_argument("--ladder", default="1,2,4", help="concurrency steps")
    parser.add_argument("--step-seconds", type=int, default=20)
    parser.add_argument("--workload", default=str(ROOT / "bench/workloads/paper.json"))
    parser.add_argument("--weights", default=f"{names.RICH_MEDIA_RERANKER}=1")
    parser.add_argument("--simulate", default="", help="started server only: engine slots simulated (e.g. empty)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="started server only: pipeline setting, e.g. generation.rerank.thinking_budget=0")
    parser.add_argument("--cache", default=str(ROOT / ".cache"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/ladder")
    args = parser.parse_args(argv)
    ladder = [int(c) for c in args.ladder.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        url, metrics_url = args.url, args.metrics_url
        if url is None:
            settings = {"pipeline": parse_settings(args.set)}
            server = stack.enter_context(start_cpu_server(Path(args.cache), args.simulate, args.out,
                                                          overrides=settings))
            url, metrics_url = server.options.grpc_url, server.options.metrics_url
        steps = []
        for number, concurrency in enumerate(ladder, start=1):
            print(f"[{number}/{len(ladder)}] concurrency {concurrency}: {args.step_seconds} s of load on {url} ...",
                  flush=True)
            started = time.monotonic()
            steps.append(measure(url, concurrency, args.step_seconds, args.workload, args.weights, args.out,
                                 metrics_url))
            print(f"      {steps[-1].requests} requests, {steps[-1].failures} failed, {steps[-1].rps:.2f} req/s, "
                  f"p95 {steps[-1].p95_ms:.0f} ms ({time.monotonic() - started:.0f} s)", flush=True)
    title = f"{Path(args.workload).stem} workload, weights {args.weights}" + (
        f", engines simulated: {args.simulate}" if args.simulate else "") + "".join(f", {s}" for s in args.set)
    print("\n" + title + "\n" + table(steps))
    write_csv(steps, args.out / "ladder.csv")
    plot(steps, args.out / "ladder.png", title)
    print(f"\nwrote {args.out / 'ladder.csv'} and {args.out / 'ladder.png'}")
    return 0


def parse_settings(items: list[str]) -> dict:
    """``["generation.rerank.thinking_budget=0"]`` -> nested dict with TOML-typed values."""
    import tomllib

    settings: dict = {}
    for item in items:
        key, _, value = item.partition("=")
        node = settings
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = tomllib.loads(f"v = {value}")["v"]
    return settings


def start_cpu_server(cache: Path, simulate: str, workdir: Path, *, overrides: dict | None = None,
                     checkpoints=None, models: tuple[str, ...] = ()):
    """The CPU repository with the tiny checkpoints (or `checkpoints`' folders), served on free loopback ports (a
    context manager).

    `overrides` are merged into the cpu profile: ``{"pipeline": {...}, "serving": {...}, "target": {...}}``;
    `models`: serve only these (ServerOptions.models), all when empty."""
    from build.profile import Checkpoints, resolve_checkpoints
    from build.render import render
    from server.host.launcher import TritonServer

    ckpts = checkpoints or resolve_checkpoints("", "", "", str(cache))
    ckpts = Checkpoints(ckpts.reranker, ckpts.vlm, simulate=simulate, postrank=ckpts.postrank)
    repository = render("cpu", workdir / "model_repository", ckpts, overrides=overrides)
    return TritonServer.on_free_ports(repository, workdir / "server", models=models)


def start_redis_repository(stack, cache: Path, workdir: Path, simulate: str = "valid") -> tuple[Path, str]:
    """A real redis-server (closed with `stack`) and the CPU repository, engines simulated, whose grade store it is:
    what replicas sharing one store serve (bench.fleet)."""
    from build.profile import Checkpoints, resolve_checkpoints
    from build.render import render
    from store.local_redis import RedisServer

    redis = stack.enter_context(RedisServer(workdir / "redis"))
    ckpts = resolve_checkpoints("", "", "", str(cache))
    repository = render("cpu", workdir / "model_repository",
                        Checkpoints(ckpts.reranker, ckpts.vlm, simulate=simulate, postrank=ckpts.postrank),
                        overrides={"pipeline": {"cover_store": {"url": redis.url}}})
    return Path(repository).resolve(), redis.url


def start_checkout_server(checkout: Path, cache: Path, simulate: str, workdir: Path, *, overrides: dict | None = None,
                          models: tuple[str, ...] = ()):
    """As `start_cpu_server`, but rendered and served from another revision's checkout (before/after runs):
    its build/ renders its own model_repository/, and its stubs import its packages. `models`: serve only these."""
    from build.profile import resolve_checkpoints
    from server.host.launcher import TritonServer

    ckpts = resolve_checkpoints("", "", "", str(cache))
    script = ("import json, sys; from build.render import Checkpoints, render; a = json.loads(sys.argv[1]); "
              "print(render('cpu', a['out'], Checkpoints(a['reranker_ckpt'], a['vlm_ckpt'], simulate=a['simulate']), "
              "overrides=a['overrides']))")
    arguments = {"out": str(workdir / "model_repository"), "reranker_ckpt": ckpts.reranker, "vlm_ckpt": ckpts.vlm,
                 "simulate": simulate, "overrides": overrides or {}}
    env = dict(os.environ, PYTHONPATH=str(checkout))
    done = subprocess.run([sys.executable, "-c", script, json.dumps(arguments)], cwd=checkout, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"rendering in {checkout} failed: {done.stderr[-2000:]}")
    return TritonServer.on_free_ports(Path(done.stdout.strip().splitlines()[-1]), workdir / "server",
                                      code_path=(str(checkout.resolve()),), models=models)


if __name__ == "__main__":
    sys.exit(main())
