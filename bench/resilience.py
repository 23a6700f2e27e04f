"""Overload, soak and shutdown checks against a real server; prints the figures the issue notes quote.

    python -m bench.resilience [--burst 96] [--soak-seconds 120]

1. overload: queues cut to `--queue` per model, engines simulated at 100 ms per batch; a burst of `--burst`
   concurrent requests. Every request must end in a result or an explicit UNAVAILABLE, never a silent timeout;
   then throughput must come back.
2. soak: steady load for `--soak-seconds` on the tiny real models; resident memory of the server and every
   model process at start and end.
3. shutdown: SIGTERM while requests are in flight: each accepted request must still get its answer.
4. hostile: on the tiny real models, the peak memory of the worst valid request (every limit at its maximum:
   candidates, content, covers at the per-request pixel budget) over an idle server, and how long a valid
   request waits when it arrives just after the worst refused one (a body just under the byte limit, full of
   candidates), against its time alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from bench.closed_loop import closed_loop
from bench.runner import ROOT, start_cpu_server
from clients.rerank_client import AsyncRerankClient, RerankClient, RerankError
from clients.workload import Workload
from server.host.launcher import TritonServer, process_tree_rss_mb


def outcome(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    if isinstance(error, RerankError):
        return error.status.split(".")[-1] or "error"
    return type(error).__name__


def server_for(cache: Path, workdir: Path, *, simulate: str = "", queue: int | None = None) -> TritonServer:
    serving = {"serving": {"max_queue_size": queue}} if queue is not None else None
    return start_cpu_server(cache, simulate, workdir, overrides=serving)


async def burst(url: str, requests, count: int) -> Counter:
    client = AsyncRerankClient(url, timeout_s=120)

    async def one(i: int):
        r = requests[i % len(requests)]
        try:
            await client.rerank(r.query, r.candidates, cover_images=r.covers)
            return None
        except RerankError as error:
            return error

    results = await asyncio.gather(*(one(i) for i in range(count)))
    await client.close()
    return Counter(outcome(e) for e in results)


def sequential_rate(url: str, requests, seconds: float) -> float:
    done, started = 0, time.monotonic()
    with RerankClient(url, timeout_s=60) as client:
        while time.monotonic() - started < seconds:
            r = requests[done % len(requests)]
            client.rerank(r.query, r.candidates, cover_images=r.covers)
            done += 1
    return done / (time.monotonic() - started)


def overload(cache: Path, workdir: Path, requests, count: int, queue: int) -> None:
    with server_for(cache, workdir / "overload", simulate="delay:100", queue=queue) as server:
        url = server.options.grpc_url
        before = sequential_rate(url, requests, 5)
        counts = asyncio.run(burst(url, requests, count))
        after = sequential_rate(url, requests, 5)
    lost = count - sum(counts.values())
    print(f"overload: burst of {count} concurrent requests, queues of {queue}, engines 100 ms per batch")
    print(f"  answered {sum(counts.values())}: {dict(counts)}; lost {lost}")
    print(f"  sequential throughput before {before:.1f} req/s, after the burst {after:.1f} req/s")


def soak(cache: Path, workdir: Path, requests, seconds: int, users: int) -> None:
    with server_for(cache, workdir / "soak") as server:
        url = server.options.grpc_url
        sequential_rate(url, requests, 3)  # warm every model before the first reading
        start = process_tree_rss_mb(server.process.pid)
        counts: Counter = Counter()

        def call(client: RerankClient, r) -> None:
            try:
                client.rerank(r.query, r.candidates, cover_images=r.covers)
                counts["ok"] += 1
            except RerankError as error:
                counts[outcome(error)] += 1

        closed_loop(url, requests, users, seconds, call)
        end = process_tree_rss_mb(server.process.pid)
    print(f"soak: {seconds} s, {users} users, tiny real models: {dict(counts)}")
    print(f"  {'process':24} {'start MB':>9} {'end MB':>9} {'growth':>8}")
    for name in sorted(start):
        print(f"  {name:24} {start[name]:>9.0f} {end.get(name, 0):>9.0f} {end.get(name, 0) - start[name]:>+8.0f}")
    total = sum(end.values()) - sum(start.values())
    print(f"  all processes: {sum(start.values()):.0f} -> {sum(end.values()):.0f} MB ({total:+.0f} MB)")


def _jpeg(side: int, index: int) -> bytes:
    """A flat cover of its own colour (8 x 8 colours far enough apart that no two encode alike)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    colour = (16 + 32 * (index % 8), 16 + 32 * (index // 8 % 8), 16 + 32 * (index // 64 % 8))  # 512 distinct
    Image.new("RGB", (side, side), colour).save(buffer, format="JPEG", quality=30)
    return buffer.getvalue()


def worst_valid_request(limits) -> tuple[str, list[dict], list[bytes]]:
    """Every limit at its maximum: candidates, covers whose pixels fill the request's budget, and each content
    as long as max_content_chars or, with many candidates, as the body's byte limit allows (its escaped JSON
    takes up to 6 bytes a character)."""
    big, small, n = int(limits.max_image_pixels ** 0.5), 64, limits.max_candidates
    covers, budget = [], limits.max_request_pixels
    for i in range(n):
        room = budget - small * small * (n - i - 1)  # the covers still to come take at least the smallest size
        side = max(small, min(big, int(max(room, 0) ** 0.5)))
        covers.append(_jpeg(side, i))
        budget -= side * side
    content_chars = min(limits.max_content_chars, int(0.9 * limits.max_request_bytes / n) // 6)
    candidates = [{"id": f"c{i}", "title": "标题" * 20, "content": "北京旅游攻略。" * (content_chars // 7)}
                  for i in range(limits.max_candidates)]
    return "北京" * (limits.max_query_chars // 2), candidates, covers


def worst_refused_body(limits) -> bytes:
    """Just under the byte limit, all of it candidates: refused for their count, after one json.loads."""
    item = b'{"id": "a", "title": ""},'
    count = (limits.max_request_bytes - 64) // len(item)
    return b'{"query": "q", "candidates": [' + item * count + b'{"id": "b", "title": ""}]}'


def hostile(cache: Path, workdir: Path, requests, checkout: Path | None = None) -> None:
    """`checkout`: serve another revision's checkout instead (the same requests, for a before/after)."""
    from bench.runner import start_checkout_server
    from ensemble.config import PipelineConfig

    limits = PipelineConfig.load().limits
    server = (start_checkout_server(checkout, cache, "", workdir / "hostile-checkout") if checkout
              else server_for(cache, workdir / "hostile"))
    if checkout:
        print(f"hostile: served from {checkout}")
    with server:
        url = server.options.grpc_url
        with RerankClient(url, timeout_s=300) as client:
            r = requests[0]
            client.rerank(r.query, r.candidates, cover_images=r.covers)  # warm
            idle = sum(process_tree_rss_mb(server.process.pid).values())
            query, candidates, covers = worst_valid_request(limits)
            peak = [idle]
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak.append(sum(process_tree_rss_mb(server.process.pid).values()))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.perf_counter()
            client.rerank(query, candidates, cover_images=covers)
            worst_s = time.perf_counter() - started
            done.set()
            sampler.join()
            print(f"hostile: worst valid request ({len(candidates)} candidates, {sum(map(len, covers)) // 1024} KB of "
                  f"covers, {limits.max_request_pixels / 1e6:.0f} M pixels): {worst_s:.1f} s, peak memory "
                  f"{max(peak) - idle:+.0f} MB over idle ({idle:.0f} MB)")
            alone = []
            for _ in range(5):
                started = time.perf_counter()
                client.rerank(r.query, r.candidates, cover_images=r.covers)
                alone.append(time.perf_counter() - started)
            body = worst_refused_body(limits)
            waits, refusals = [], []
            started = time.perf_counter()
            try:
                raw_rerank(url, body)
            except RerankError:
                pass
            halfway = (time.perf_counter() - started) / 2
            for _ in range(5):
                errors: list[str] = []

                def refused() -> None:
                    started = time.perf_counter()
                    try:
                        raw_rerank(url, body)
                    except RerankError as error:
                        errors.append(outcome(error))
                    refusals.append(time.perf_counter() - started)

                bad = threading.Thread(target=refused)
                bad.start()
                time.sleep(halfway)  # arrives while the refused one is being read, not before it
                started = time.perf_counter()
                client.rerank(r.query, r.candidates, cover_images=r.covers)
                waits.append(time.perf_counter() - started)
                bad.join()
                assert len(errors) == 1, errors
    median = lambda values: sorted(values)[len(values) // 2]  # noqa: E731
    print(f"  a valid request alone: {median(alone) * 1000:.0f} ms (median of 5); sent halfway through the worst "
          f"refused one ({len(body) / 2 ** 20:.1f} MB, refused in {median(refusals) * 1000:.0f} ms): "
          f"{median(waits) * 1000:.0f} ms; target: waits no longer than one normal request "
          f"({'MET' if median(waits) - median(alone) <= median(alone) else 'NOT MET'})")


def raw_rerank(url: str, body: bytes) -> None:
    """A re-rank call with a body the client library would not build (it is JSON already)."""
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from ensemble.names import RICH_MEDIA_RERANKER

    tensor = grpcclient.InferInput("request", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[body]], dtype=np.object_))
    client = grpcclient.InferenceServerClient(url)
    try:
        client.infer(RICH_MEDIA_RERANKER, [tensor], client_timeout=120)
    except InferenceServerException as exc:
        raise RerankError(RICH_MEDIA_RERANKER, exc.status(), exc.message()) from None
    finally:
        client.close()


def shutdown(cache: Path, workdir: Path, requests, users: int) -> None:
    server = server_for(cache, workdir / "shutdown", simulate="delay:300")
    server.start()
    server.wait_ready()
    url = server.options.grpc_url
    results: list[tuple[float, float, str]] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 6

    def user(k: int) -> None:
        with RerankClient(url, timeout_s=60) as client:
            while time.monotonic() < stop_at:
                r = requests[k % len(requests)]
                sent = time.monotonic()
                try:
                    client.rerank(r.query, r.candidates, cover_images=r.covers)
                    result = "ok"
                except RerankError as error:
                    result = outcome(error)
                with lock:
                    results.append((sent, time.monotonic(), result))
                if result not in ("ok",):
                    return

    threads = [threading.Thread(target=user, args=(k,)) for k in range(users)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    sigterm_at = time.monotonic()
    os.kill(server.process.pid, signal.SIGTERM)
    for t in threads:
        t.join()
    code = server.process.wait(timeout=60)
    exit_s = time.monotonic() - sigterm_at
    in_flight = [r for r in results if r[0] < sigterm_at < r[1]]
    after = [r for r in results if r[0] >= sigterm_at]
    print(f"shutdown: SIGTERM under load ({users} users, engines 300 ms): server exited with {code} after {exit_s:.1f} s")
    print(f"  in flight at SIGTERM: {len(in_flight)}, answered: {Counter(r[2] for r in in_flight)}")
    print(f"  sent after SIGTERM: {len(after)}, answered: {Counter(r[2] for r in after)}")
    print(f"  before SIGTERM completed: {sum(1 for r in results if r[1] <= sigterm_at)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=96)
    parser.add_argument("--queue", type=int, default=4)
    parser.add_argument("--soak-seconds", type=int, default=120)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--only", choices=("overload", "soak", "shutdown", "hostile"))
    parser.add_argument("--cache", default=str(ROOT / ".cache"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/resilience")
    parser.add_argument("--baseline", type=Path, help="hostile: serve this checkout of another revision instead")
    args = parser.parse_args(argv)
    requests = Workload.load(ROOT / "bench/workloads/smoke.json").requests()
    cache = Path(args.cache)
    if args.only in (None, "overload"):
        overload(cache, args.out, requests, args.burst, args.queue)
    if args.only in (None, "soak"):
        soak(cache, args.out, requests, args.soak_seconds, args.users)
    if args.only in (None, "shutdown"):
        shutdown(cache, args.out, requests, args.users)
    if args.only in (None, "hostile"):
        hostile(cache, args.out, requests, args.baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
