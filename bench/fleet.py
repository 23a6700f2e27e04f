"""A fleet of CPU replicas behind one balanced client, under steady load: SIGKILL one replica, start a fresh one,
SIGTERM (drain) another. Nothing may fail.

    python -m bench.fleet                           # 3 replicas, 20 s a phase, 6 closed-loop users
    python -m bench.fleet --phase-seconds 6         # as tests/e2e/test_fleet.py runs it

Replicas are lean (the BLS and the two engine slots, engines simulated: `ServerOptions.models`) and share one real
redis-server as their grade store; they serve gRPC over TLS and want the inference key, as a fleet reached over a
network does (`--plaintext`: neither). The load is one `RerankClient` over one `Connection` naming every replica's
address (gRPC's round_robin, retries on UNAVAILABLE), shared by all users; the fresh replica's address is in the list
from the start, as a restarted pod's is behind its name, and gRPC connects to it once it listens.

Prints a table per phase: requests answered and failed, req/s, each live replica's share (from its own Triton
statistics), and the seconds after the change until throughput was back to the phase's level (90% of its median
per-second rate, over a 2 s window). The fresh replica's line says how long after it was ready it served its first
request.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import tritonclient.grpc as grpcclient

from bench.runner import ROOT
from clients.connection import Connection
from clients.rerank_client import RerankClient, RerankError
from clients.workload import Workload, WorkloadRequest
from ensemble import names
from server.host.launcher import ServerOptions, ServerTls, TritonServer, free_ports

SHARE_TOLERANCE = 0.2
RECOVERY_TARGET_S = 10.0


class Replica:
    """One tritonserver on ports chosen up front (its address is known before it starts)."""

    def __init__(self, name: str, repository: Path, workdir: Path, ca: str | None = None, **options) -> None:
        http, grpc_port, metrics = free_ports(3)
        self.name, self.ca = name, ca
        self.server = TritonServer(ServerOptions(repository, http, grpc_port, metrics, models=names.PIPELINE_MODELS,
                                                 **options), workdir / name)
        self.ready_at: float | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.options.grpc_port}"

    @property
    def alive(self) -> bool:
        return self.server.process is not None and self.server.process.poll() is None

    def start(self) -> Replica:
        self.server.start()
        return self

    def wait_ready(self) -> None:
        self.server.wait_ready(timeout_s=600)
        self.ready_at = time.monotonic()

    def served(self) -> int:
        """Requests this replica's BLS answered (its Triton statistics); -1 once it is gone."""
        if not self.alive:
            return -1
        client = grpcclient.InferenceServerClient(**Connection(self.address, attempts=1, ca=self.ca).client_kwargs())
        try:
            stats = client.get_inference_statistics(names.RICH_MEDIA_RERANKER, as_json=True)
            return int(stats["model_stats"][0].get("inference_count", 0))
        except Exception:  # noqa: BLE001 - stopping: no statistics
            return -1
        finally:
            client.close()

    def kill(self) -> None:
        os.killpg(self.server.process.pid, signal.SIGKILL)
        self.server.process.wait()

    def drain(self) -> None:
        """SIGTERM: Triton finishes what is in flight and answers new calls UNAVAILABLE until it exits."""
        self.server.stop()


@dataclass
class Load:
    """Closed-loop users sharing one balanced client; every call's end time and outcome."""

    client: RerankClient
    pool: list[WorkloadRequest]
    users: int
    done: list[float] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._user, args=(k,), daemon=True) for k in range(self.users)]

    def _user(self, k: int) -> None:
        i = k
        while not self._stop.is_set():
            r = self.pool[i % len(self.pool)]
            i += self.users
            try:
                self.client.rerank(r.query, r.candidates, cover_images=r.covers)
            except RerankError as error:
                with self._lock:
                    self.failures.append((time.monotonic(), f"{error.status}: {error.message[:200]}"))
                continue
            with self._lock:
                self.done.append(time.monotonic())

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def count(self, start: float, end: float) -> int:
        with self._lock:
            return sum(start <= t < end for t in self.done)

    def failed(self, start: float, end: float) -> list[str]:
        with self._lock:
            return [message for t, message in self.failures if start <= t < end]


@dataclass(frozen=True)
class Phase:
    name: str
    start: float
    end: float
    answered: int
    failed: list[str]
    shares: dict[str, int]
    """Requests each live replica answered in the phase."""
    recovery_s: float | None
    """Seconds from the change until throughput was back to the level of the replicas live (None: never within the
    phase)."""
    rates: list[int]
    """Requests answered in each second of the phase."""

    def steady(self) -> float:
        """The phase's level: the median of its second half's per-second rates."""
        return statistics.median(self.rates[len(self.rates) // 2:]) if self.rates else 0.0

    @property
    def throughput(self) -> float:
        return self.answered / (self.end - self.start)

    def share_spread(self) -> float:
        """The largest deviation of a replica's share from an even split (0.1 = 10%)."""
        counts = list(self.shares.values())
        if len(counts) < 2 or sum(counts) == 0:
            return 0.0
        even = sum(counts) / len(counts)
        return max(abs(c - even) / even for c in counts)


def per_second(load: Load, start: float, end: float) -> list[int]:
    return [load.count(start + s, start + s + 1) for s in range(int(end - start))]


def recovery(rates: list[int], level: float, window: int = 2) -> float | None:
    """Seconds from the phase's start until a `window` of per-second throughput first averages `level`."""
    span = window
    for s in range(len(rates) - span + 1):
        if sum(rates[s:s + span]) / span >= level:
            return float(s)
    return None


def measure(load: Load, replicas: list[Replica], name: str, seconds: float, level: float | None = None) -> Phase:
    """A phase of `seconds` from now (just after a change). `level`: the throughput it should get back to (the
    phase before, scaled to the replicas now live); None for the first."""
    live = [r for r in replicas if r.alive]
    before = {r.name: r.served() for r in live}
    start = time.monotonic()
    time.sleep(seconds)
    end = time.monotonic()
    after = {r.name: r.served() for r in live}
    shares = {n: after[n] - before[n] for n in before if after.get(n, -1) >= 0 and before[n] >= 0}
    rates = per_second(load, start, end)
    back = recovery(rates, 0.9 * (level if level is not None else statistics.median(rates)))
    return Phase(name, start, end, load.count(start, end), load.failed(start, end), shares, back, rates)


def first_served_after_ready(replica: Replica, timeout_s: float = 30.0) -> float | None:
    """Seconds from the replica's readiness to its first answered request (polled every 0.1 s)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if replica.served() > 0:
            return time.monotonic() - replica.ready_at
        time.sleep(0.1)
    return None


@dataclass(frozen=True)
class Result:
    phases: list[Phase]
    fresh_first_request_s: float | None
    failures_outside_phases: list[str]

    @property
    def failed(self) -> int:
        return sum(len(p.failed) for p in self.phases) + len(self.failures_outside_phases)

    def table(self) -> str:
        lines = [f"{'phase':34} {'answered':>8} {'failed':>6} {'req/s':>6} {'spread':>6} {'back in':>7}  shares"]
        for p in self.phases:
            back = "-" if p.recovery_s is None else f"{p.recovery_s:.0f} s"
            lines.append(f"{p.name:34} {p.answered:>8} {len(p.failed):>6} {p.throughput:>6.1f} "
                         f"{p.share_spread():>6.0%} {back:>7}  {p.shares}  per s: {p.rates}")
        fresh = "never" if self.fresh_first_request_s is None else f"{self.fresh_first_request_s:.1f} s"
        lines.append(f"fresh replica: first request {fresh} after it was ready; failed requests in all: {self.failed}")
        return "\n".join(lines)


INFERENCE_KEY = "rmr-inference=fleet-test-key"


class Fleet:
    """`replicas` lean replicas sharing one redis-server, started and ready, and one more (`fresh`) whose address is
    known but which is not started; with `secure`, every one serves gRPC over TLS (a throwaway CA, bench/pki.py)
    and wants the inference key. A context manager."""

    def __init__(self, work: Path, cache: Path, replicas: int = 3, secure: bool = True, log=print) -> None:
        self.work, self.cache, self.count, self.secure, self.log = work, cache, replicas, secure, log
        self._stack = ExitStack()

    def __enter__(self) -> Fleet:
        from bench.pki import make_pki
        from bench.runner import start_redis_repository

        try:
            self.pki = make_pki(self.work / "pki") if self.secure else None
            repository, self.store_url = start_redis_repository(self._stack, self.cache, self.work)
            options = ({"inference_key": INFERENCE_KEY, "ca": str(self.pki.ca),
                        "tls": ServerTls(self.pki.server_cert, self.pki.server_key)} if self.pki else {})
            self.replicas = [Replica(f"replica-{i}", repository, self.work, **options) for i in range(self.count + 1)]
            self._stack.callback(lambda: [r.server.stop() for r in self.replicas if r.alive])
            *first, _ = self.replicas
            for replica in first:
                replica.start()
            for replica in first:
                replica.wait_ready()
        except BaseException:
            self._stack.close()
            raise
        self.log(f"{self.count} replicas ready ({', '.join(r.address for r in first)}); store {self.store_url}")
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def connection(self, addresses: list[str] | None = None, **options) -> Connection:
        """Every replica's address (the fresh one's too), with the CA and the key when the fleet is secure."""
        secure = {"ca": str(self.pki.ca), "inference_key": INFERENCE_KEY} if self.pki else {}
        return Connection(",".join(addresses or [r.address for r in self.replicas]), **(secure | options))

    def run(self, users: int = 6, phase_s: float = 20.0,
            workload: Path = ROOT / "bench/workloads/smoke.json") -> Result:
        """Under load from one balanced client: SIGKILL replica 0, start the fresh one, SIGTERM replica 1."""
        *first, fresh = self.replicas
        with ExitStack() as stack:
            client = stack.enter_context(RerankClient(self.connection(), timeout_s=120))
            load = Load(client, Workload.load(workload).requests(), users).start()
            stack.callback(load.stop)
            phases: list[Phase] = []

            def level(live_now: int) -> float:
                """What the live replicas should serve: the last phase's level, scaled by how many serve now."""
                last = phases[-1]
                return min(last.steady(), last.steady() * live_now / max(len(last.shares), 1))

            phases.append(measure(load, self.replicas, f"{len(first)} replicas", phase_s))
            gap_start = time.monotonic()
            first[0].kill()
            phases.append(measure(load, self.replicas, f"SIGKILL {first[0].name}", phase_s, level(len(first) - 1)))
            fresh.start()
            fresh.wait_ready()
            fresh_first = first_served_after_ready(fresh)
            phases.append(measure(load, self.replicas, f"fresh {fresh.name} ready", phase_s, level(len(first))))
            draining = threading.Thread(target=first[1].drain, daemon=True)
            draining.start()
            phases.append(measure(load, self.replicas, f"SIGTERM (drain) {first[1].name}", phase_s,
                                  level(len(first) - 1)))
            draining.join(timeout=120)
            load.stop()
            inside = [(p.start, p.end) for p in phases]
            outside = [m for t, m in load.failures if t >= gap_start and not any(s <= t < e for s, e in inside)]
            return Result(phases, fresh_first, outside)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--users", type=int, default=6, help="closed-loop users sharing the one balanced client")
    parser.add_argument("--phase-seconds", type=float, default=20.0)
    parser.add_argument("--plaintext", action="store_true", help="no TLS and no inference key")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/fleet")
    args = parser.parse_args(argv)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    with Fleet(args.out, args.cache, replicas=args.replicas, secure=not args.plaintext, log=log) as fleet:
        result = fleet.run(users=args.users, phase_s=args.phase_seconds)
    print(result.table())
    return 0 if result.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
