"""Pipeline overhead: the time a re-rank request with 20 candidates and 20 covers spends outside the engine slots.

The engine slots are simulated (engines/simulated.py): by default `valid`, which answers at once as a good model
would (reasoning, then a well-formed answer), so the pipeline takes its normal path; `empty` shows the degraded
path (no grades, fallback ranking). Every request is different (no cache hit a real stream would not get), and
requests are sent one at a time. Each BLS mode (`bls_sub_calls`) gets its own server, so one run shows both:
`ensembles` (two ensembles, six Python-backend steps) and `engines` (steps in the BLS, two engine calls). The
servers run side by side and take each request in turn, so a comparison is not skewed by the machine's drift.

    outside the engines, client view = p50 client round trip - mean engine-slot time per request (queue + compute)
    outside the engines, in the BLS  = p50 time in the BLS       - the same engine-slot time
The second is what the target names (pre, post, BLS, hand-offs); the first adds the client's gRPC call.

    python -m bench.overhead [--requests 60] [--modes engines,ensembles] [--simulate valid]
    python -m bench.overhead --modes engines --baseline /tmp/main-before    # before/after a change, side by side

`--baseline DIR` adds a server rendered and served from another revision's checkout (`git worktree add DIR REV`),
in the default `engines` mode, as one more column of the same interleaved run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.runner import CONTAINERS, ENGINE_SLOTS, ROOT, parse_settings, start_checkout_server, start_cpu_server
from bench.step_costs import print_costs, step_costs
from bench.triton_stats import IN_BLS, ModelStats, diff, is_wait, snapshot
from clients.rerank_client import RerankClient
from clients.workload import Workload, WorkloadRequest
from ensemble.names import PIPELINE_MODELS, SubCalls

TARGET_MS = 5.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class ModeResult:
    mode: str
    client_ms: list[float]
    bls_ms: list[float]
    stats: dict[str, ModelStats]
    requests: int

    @property
    def engine_ms(self) -> float:
        """Engine-slot queue + compute per request."""
        total_ns = sum(s.queue_ns + s.compute_ns for n, s in self.stats.items() if n in ENGINE_SLOTS)
        return total_ns / self.requests / 1e6

    @property
    def outside_ms(self) -> float:
        """As the client sees it: includes its gRPC call to Triton, which any served model pays."""
        return statistics.median(self.client_ms) - self.engine_ms

    @property
    def outside_in_server_ms(self) -> float:
        """The issue's list (pre, post, BLS, hand-offs): the BLS's own time minus the engine slots'."""
        return statistics.median(self.bls_ms) - self.engine_ms


BASELINE = "baseline"


def measure(modes: list[str], pool: list[WorkloadRequest], warmup: int, cache: Path, simulate: str, out: Path,
            settings: dict | None = None, baseline: Path | None = None) -> list[ModeResult]:
    """One server per mode, all up at once, each request sent to each in turn: the modes see the same
    machine (on a shared VM its speed drifts by tens of percent within minutes). A server whose BLS runs the steps
    itself (sub-calls to the engines, the baseline's default too) serves only the BLS and the engine slots: the
    other entries would be idle processes competing for the cores at start."""
    with ExitStack() as stack:
        servers, clients = [], []
        for mode in modes:
            if mode == BASELINE:
                server = stack.enter_context(start_checkout_server(baseline, cache, simulate, out / mode,
                                                                   overrides={"pipeline": settings or {}},
                                                                   models=PIPELINE_MODELS))
                servers.append(server)
                clients.append(stack.enter_context(RerankClient(server.options.grpc_url, timeout_s=60)))
                continue
            sub_calls, _, setting = mode.partition(":")
            serving = {"bls_sub_calls": sub_calls} | parse_settings([setting] if setting else [])
            lean = PIPELINE_MODELS if sub_calls == SubCalls.ENGINES.value else ()
            server = stack.enter_context(start_cpu_server(cache, simulate, out / mode.replace(":", "_"),
                                                          overrides={"serving": serving, "pipeline": settings or {}},
                                                          models=lean))
            servers.append(server)
            clients.append(stack.enter_context(RerankClient(server.options.grpc_url, timeout_s=60)))
        for r in pool[:warmup]:
            for client in clients:
                client.rerank(r.query, r.candidates, cover_images=r.covers)
        before = [snapshot(s.options.grpc_url, s.options.metrics_url) for s in servers]
        client_ms: list[list[float]] = [[] for _ in modes]
        bls_ms: list[list[float]] = [[] for _ in modes]
        for r in pool[warmup:]:
            for i, client in enumerate(clients):
                started = time.perf_counter()
                result = client.rerank(r.query, r.candidates, cover_images=r.covers)
                client_ms[i].append((time.perf_counter() - started) * 1000)
                bls_ms[i].append(result.response["timings_ms"]["total"])
                assert len(result.ranked_ids) == len(r.candidates)
                if simulate == "valid":
                    assert result.response["valid"] and not result.response["fallback"], result.response
        stats = [diff(snapshot(s.options.grpc_url, s.options.metrics_url), b) for s, b in zip(servers, before)]
    return [ModeResult(mode, client_ms[i], bls_ms[i], stats[i], len(pool) - warmup) for i, mode in enumerate(modes)]


def print_result(result: ModeResult) -> None:
    print(f"\n{result.mode}: per request, summed over the model's calls (queue + compute ms; executions per request)")
    n = result.requests
    for name, s in sorted(result.stats.items()):
        if not s.requests:
            continue
        tag = ("engine, simulated" if name in ENGINE_SLOTS else "total of its steps" if name in CONTAINERS
               else "engine call as the BLS waits" if is_wait(name)
               else "step, run by the BLS" if name.endswith(IN_BLS) else "step")
        print(f"  {name:30} {s.queue_ns / n / 1e6:7.2f} + {s.compute_ns / n / 1e6:7.2f}"
              f"   {s.executions / n:5.1f} executions, {s.requests / n:5.1f} requests  ({tag})")


def breakdown(result: ModeResult) -> None:
    """Where the time outside the engines goes (engines mode: the BLS reports its engine calls' wall time)."""
    calls = [s for name, s in result.stats.items() if is_wait(name)]
    if not calls:
        return
    n = result.requests
    call_ms = sum(s.compute_ns for s in calls) / n / 1e6
    hop = statistics.median(c - b for c, b in zip(result.client_ms, result.bls_ms))
    steps = sum(s.compute_ns for name, s in result.stats.items() if name.endswith(IN_BLS) and not is_wait(name)) / n / 1e6
    print(f"  outside the engines, {result.outside_ms:.1f} ms, is made of:")
    print(f"    client <-> BLS (gRPC, Triton, tensors in and out)    {hop:5.1f} ms  (round trip - time in the BLS)")
    print(f"    BLS work: pre/post steps {steps:.1f} ms + parse, image checks, merging "
          f"{statistics.median(result.bls_ms) - call_ms - steps:.1f} ms")
    print(f"    BLS <-> engine slot hand-offs                        {call_ms - result.engine_ms:5.1f} ms  "
          f"(engine calls as the BLS waits {call_ms:.1f} ms - slots' queue + compute)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--modes", default="ensembles,engines",
                        help="bls_sub_calls values, one server each, optionally with one [serving] setting: "
                             "engines:bls_waits_in_place=false")
    parser.add_argument("--simulate", default="valid", choices=("valid", "empty"))
    parser.add_argument("--workload", default=str(ROOT / "bench/workloads/overhead.json"))
    parser.add_argument("--cache", default=str(ROOT / ".cache"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="pipeline setting, e.g. tokenization.fast_bpe=false")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/overhead")
    parser.add_argument("--baseline", type=Path, help="a checkout of another revision, served as one more mode")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    workload = Workload.load(args.workload)
    pool = Workload({**workload.spec, "pool": args.warmup + args.requests}).requests()
    modes = args.modes.split(",") + ([BASELINE] if args.baseline else [])
    results = measure(modes, pool, args.warmup, Path(args.cache), args.simulate, args.out, parse_settings(args.set),
                      args.baseline)

    n_covers = sum(1 for c in pool[0].covers if c)
    print(f"overhead of one re-rank request: {len(pool[0].candidates)} candidates, {n_covers} covers "
          f"({2 * n_covers} cover evaluations), engine slots simulated ({args.simulate}); "
          f"{args.requests} different requests, one at a time" + "".join(f", {s}" for s in args.set))
    w = max(14, *(len(r.mode) for r in results))
    print(f"  {'':{w}} {'':>15} {'':>8} {'':>11} {'':>13} {'outside the engines':^27}")
    print(f"  {'bls_sub_calls':{w}} {'round trip p50':>15} {'p95':>8} {'in BLS p50':>11} {'engine slots':>13}"
          f" {'client view':>13} {'in the BLS':>13}  target <= {TARGET_MS:.0f} ms (in the BLS)")
    for r in results:
        print(f"  {r.mode:{w}} {statistics.median(r.client_ms):12.1f} ms {percentile(r.client_ms, .95):5.1f} ms"
              f" {statistics.median(r.bls_ms):8.1f} ms {r.engine_ms:10.1f} ms {r.outside_ms:10.1f} ms"
              f" {r.outside_in_server_ms:10.1f} ms  {'MET' if r.outside_in_server_ms <= TARGET_MS else 'NOT MET'}")
    for r in results:
        print_result(r)
        breakdown(r)

    from build.profile import resolve_checkpoints
    from ensemble.config import PipelineConfig
    from ensemble.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(str(resolve_checkpoints("", "", "", args.cache).reranker))
    print("\nwhere the BLS's own time goes (engines mode; in process, no Triton; median of 20 requests):")
    print_costs(step_costs(pool[:20], tokenizer, PipelineConfig.load()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
