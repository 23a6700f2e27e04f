"""`rmr batch`: the day's queries through the whole chain on Ray Data, spread over Triton endpoints, into the
result store.

    rmr batch --queries day.jsonl --corpus corpus.jsonl --store redis://... --server host1:8001,host2:8001

read (JSONL lines or Parquet rows) -> map_batches over an actor pool of gRPC clients -> each result written to the
store by the actor that made it. Locally with `--num-cpus`; unchanged on a cluster with `--ray-address`.
Resumable: a query whose result of this deployment's version is stored is skipped, and writes are idempotent.
Lines whose queries are equal after the result key's normalisation run once (clients/batch/claims.py); the others
count as duplicates. The result store is checked before Ray starts: a store that cannot be reached ends the job at
once, naming the URL and the reason.
A line that fails (bad JSON, no query, a candidate the server refuses, no endpoint left) goes to the
dead-letter file with its reason; the job goes on. Each actor keeps `--concurrency` queries in flight, so an
endpoint has at most (actors x concurrency / endpoints); an endpoint that answers UNAVAILABLE, or cannot be reached, is
left alone for `--backoff` seconds and the query tried on the next one.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clients.batch.chain import Chain, LineError, parse_line
from clients.batch.results import DEFAULT_TTL_S, ResultStore, result_value
from clients.connection import Connection
from clients.rerank_client import AsyncRerankClient, RerankClient, RerankError
from ensemble.outcome_counts import response_kind
from ensemble.rerank.outcome import RERANKER_FAILED

RETRYABLE = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "CANCELLED", "NOT_FOUND")
"""Answers that say the endpoint, not the query, is the problem (NOT_FOUND: a server unloading its models as it
shuts down): the query goes to the next endpoint."""
ACTOR_CPUS = 0.0
"""An actor mostly waits on its server: it reserves no CPU, so any number of them leaves the read tasks room
(at 0.25 each, 8 actors would hold both CPUs of `--num-cpus 2`, no read task could run, and the job would hang)."""
BLOCKS_PER_ACTOR = 8
ACTOR_BATCHES = 2
"""Batches an actor takes at once: the next one starts while the last queries of the other finish."""
ENGINE_FAILED = RERANKER_FAILED
"""A fallback ranking because the re-ranker did not answer: not the day's result; tried elsewhere, else failed."""


@dataclass(frozen=True)
class JobOptions:
    queries: Path
    store_url: str
    endpoints: tuple[str, ...]
    corpus: Path | None = None
    retriever_url: str = ""
    dead_letters: Path = Path("dead_letters.jsonl")
    k: int = 10
    actors: int = 2
    concurrency: int = 4
    """Queries each actor keeps in flight: actors x concurrency in all."""
    num_cpus: int | None = None
    ray_address: str = ""
    batch_size: int = 8
    """Queries an actor takes at a time: each hand-over between Ray Data and an actor costs some 10-20 ms, so
    small batches leave actors idle (bench.batch_throughput); results are still written one query at a time."""
    timeout_s: float = 120.0
    backoff_s: float = 5.0
    ttl_s: float = DEFAULT_TTL_S
    store_base: Path = Path(".")
    pointwise: str = "off"
    """The re-rank's options.pointwise: "signal" or "rank" adds a pointwise grader's grades (ensemble/pointwise/)."""
    pointwise_grader: str = "relevance"
    post_rank: bool = False
    """The re-rank's options.post_rank: the head post-ranked with the documents' `features` (ensemble/postrank/)."""
    connection: Connection = Connection()  # retries, TLS and the key of each endpoint's client (client_for)

    def client_for(self, endpoint: str) -> Connection:
        return replace(self.connection, url=endpoint)

    @property
    def rerank_options(self) -> dict[str, Any]:
        options = {} if self.pointwise == "off" else {"pointwise": self.pointwise, "grader": self.pointwise_grader}
        return options | ({"post_rank": True} if self.post_rank else {})


def open_results(options: JobOptions, version: str) -> ResultStore:
    from store import open_store

    store = open_store(options.store_url, timeout_s=5.0, base=options.store_base)
    return ResultStore(store, version, ttl_s=options.ttl_s or None)


class QueryWorker:
    """One Ray actor: an asyncio gRPC client per endpoint, the retriever, the result store. The queries of its
    batches run concurrently, at most `options.concurrency` at a time: one process keeps many in flight, as a
    load generator does, where a process per query would spend Ray's per-worker CPU many times over."""

    def __init__(self, options: JobOptions, version: str, retriever: Any, claims: Any) -> None:
        """`retriever`: built once by the driver (an index is shipped to every actor, not rebuilt by each);
        `claims`: the job's `QueryClaims` actor."""
        self.options = options
        self.claims = claims
        self.version = version
        self.down_until = dict.fromkeys(options.endpoints, 0.0)
        self.turn = random.randrange(len(options.endpoints))  # actors start on different endpoints
        self.chain = Chain(retriever, k=options.k, options=options.rerank_options)
        self.clients: dict[str, AsyncRerankClient] | None = None

    def _open(self) -> None:
        """On Ray's event loop, at the first batch: gRPC's asyncio channels and the store's connection belong to
        the thread that uses them."""
        if self.clients is None:
            self.clients = {e: AsyncRerankClient(self.options.client_for(e), timeout_s=self.options.timeout_s)
                            for e in self.options.endpoints}
            self.results = open_results(self.options, self.version)
            self.slots = asyncio.Semaphore(self.options.concurrency)

    async def __call__(self, batch: dict[str, Any]):
        self._open()
        texts = [str(t) for t in batch["text"] if str(t).strip()]
        if not texts:
            yield {key: [] for key in _row("skipped", "", "")}
            return
        parsed: list[Any] = []
        for text in texts:
            try:
                parsed.append(parse_line(text))
            except LineError as error:
                parsed.append(error)
        lines = [i for i, p in enumerate(parsed) if not isinstance(p, LineError)]
        firsts = await self.claims.claim.remote([parsed[i].query for i in lines]) if lines else []
        claimed = {i for i, first in zip(lines, firsts) if first}  # the job's first line of its query
        fresh = [parsed[i].query for i in sorted(claimed)]
        stored = iter(self.results.stored(fresh)) if fresh else iter(())
        work = []
        for i, (text, line) in enumerate(zip(texts, parsed)):
            if isinstance(line, LineError):
                work.append(_done(_row("failed", text, "", reason=str(line))))
            elif i not in claimed:
                work.append(_done(_row("duplicate", text, line.query)))
            elif next(stored):
                work.append(_done(_row("skipped", text, line.query)))
            else:
                work.append(self._run(text, line))
        rows = await asyncio.gather(*work)
        yield {key: [row[key] for row in rows] for key in rows[0]}

    async def _run(self, text: str, line) -> dict[str, Any]:
        async with self.slots:
            return await self._try_endpoints(text, line)

    async def _try_endpoints(self, text: str, line) -> dict[str, Any]:
        endpoints = self.options.endpoints
        first = self.turn  # each query tries every endpoint once, from the next in turn
        self.turn += 1
        for step in range(len(endpoints)):
            endpoint = endpoints[(first + step) % len(endpoints)]
            if time.monotonic() < self.down_until[endpoint]:
                continue
            started = time.perf_counter()
            try:
                plan, response = await self.chain.run_async(self.clients[endpoint], line)
            except LineError as error:
                return _row("failed", text, line.query, reason=str(error))
            except RerankError as error:
                code = error.status.split(".")[-1]
                if code in RETRYABLE or not code:
                    self.down_until[endpoint] = time.monotonic() + self.options.backoff_s
                    continue
                return _row("failed", text, line.query, reason=f"{code}: {error.message[:300]}")
            if response.get("fallback") and str(response.get("fallback_reason") or "").startswith(ENGINE_FAILED):
                self.down_until[endpoint] = time.monotonic() + self.options.backoff_s
                continue
            chain_s = time.perf_counter() - started
            self.results.put(line.query, result_value(line.query, response, plan, self.results.version))
            sources = Counter(s for g in response.get("cover_grades", []) for s in g["source"].values())
            outcome = response_kind(response)
            return _row("done", text, line.query, endpoint=endpoint, outcome=outcome,
                        from_store=sources["store"] + sources["cache"], from_model=sources["model"],
                        chain_s=chain_s, store_s=time.perf_counter() - started - chain_s)
        return _row("failed", text, line.query, reason="no endpoint answered (UNAVAILABLE, unreachable, "
                    "or its re-ranker failed)")


async def _done(row: dict[str, Any]) -> dict[str, Any]:
    return row


def _row(status: str, text: str, query: str, *, reason: str = "", endpoint: str = "", outcome: str = "",
         from_store: int = 0, from_model: int = 0, chain_s: float = 0.0, store_s: float = 0.0) -> dict[str, Any]:
    """`chain_s`: the seconds of the successful chain call (plan, retrieval, re-rank); `store_s`: writing its
    result; `worker`: the actor's process. Benchmarks time the job from them (run_job's `on_row`)."""
    return {"status": status, "text": text if status == "failed" else "", "query": query, "reason": reason,
            "endpoint": endpoint, "outcome": outcome, "from_store": from_store, "from_model": from_model,
            "chain_s": chain_s, "store_s": store_s, "finished_at": time.time(), "worker": os.getpid()}


@dataclass
class Summary:
    statuses: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    endpoints: Counter = field(default_factory=Counter)
    grades: Counter = field(default_factory=Counter)

    def add(self, row: dict[str, Any]) -> None:
        self.statuses[row["status"]] += 1
        if row["status"] == "failed":
            self.reasons[row["reason"].split(" (")[0][:80]] += 1
        if row["status"] == "done":
            self.outcomes[row["outcome"]] += 1
            self.endpoints[row["endpoint"]] += 1
            self.grades["store"] += int(row["from_store"])
            self.grades["model"] += int(row["from_model"])

    def lines(self, seconds: float) -> list[str]:
        total = sum(self.statuses.values())
        out = [f"batch: {total} lines in {seconds:.0f} s: {self.statuses['done']} done, {self.statuses['skipped']} "
               f"already stored, {self.statuses['failed']} failed, {self.statuses['duplicate']} duplicates "
               "(the query of an earlier line, after normalisation)",
               f"  answers: {dict(self.outcomes) or 'none'}; cover grades from the store {self.grades['store']}, "
               f"from the model {self.grades['model']}",
               f"  per endpoint: {dict(self.endpoints) or 'none'}"]
        out += [f"  failed ({reason}): {count}" for reason, count in self.reasons.most_common()]
        return out


def probe_version(options: JobOptions) -> str:
    """The deployment's model_version, from the first endpoint that answers a tiny covers-only call."""
    errors = []
    for endpoint in options.endpoints:
        try:
            with RerankClient(options.client_for(endpoint), timeout_s=options.timeout_s) as client:
                response = client.rerank("version probe", [{"id": "probe", "title": "probe"}],
                                         options={"rerank": False, "evaluate_covers": False}).response
            return response["model_version"]
        except RerankError as error:
            errors.append(f"{endpoint}: {error.status}")
    raise SystemExit(f"no endpoint answered: {'; '.join(errors)}")


def count_lines(path: Path) -> int | None:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def run_job(options: JobOptions, *, progress: bool = True,
            on_row: Callable[[dict[str, Any]], None] | None = None) -> Summary:
    """Runs the job to its end; `on_row` sees every row as it comes (benchmarks time them)."""
    import ray
    from tqdm import tqdm

    from store import StoreError, checked_store

    try:  # before Ray and the servers: a job that cannot keep its results should not start
        checked_store(options.store_url, timeout_s=5.0, base=options.store_base).close()
    except StoreError as error:
        raise SystemExit(f"rmr batch: result {error}") from None
    if not ray.is_initialized():
        ray.init(address=options.ray_address or None, num_cpus=None if options.ray_address else options.num_cpus,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False  # one bar, ours
    version = probe_version(options)
    from clients.batch.retrieval import HttpRetriever, LocalIndex

    retriever = (LocalIndex(options.corpus) if options.corpus else
                 HttpRetriever(options.retriever_url) if options.retriever_url else None)
    path = str(options.queries.resolve())
    lines = count_lines(options.queries)
    # A block is one actor's task: blocks must outnumber the actors (Ray reads a small file as a few blocks, which
    # would leave most actors idle), and many blocks each keep the last ones short.
    blocks = max(1, min(lines or 1, options.actors * BLOCKS_PER_ACTOR))
    if options.queries.suffix == ".parquet":
        ds = ray.data.read_parquet(path, override_num_blocks=blocks).map(
            lambda row: {"text": json.dumps(row, ensure_ascii=False, default=str)})
    else:
        ds = ray.data.read_text(path, override_num_blocks=blocks)
    from clients.batch.claims import QueryClaims

    claims = ray.remote(num_cpus=0)(QueryClaims).remote()
    results = ds.map_batches(QueryWorker, fn_constructor_kwargs={"options": options, "version": version,
                                                                 "retriever": retriever, "claims": claims},
                             compute=ray.data.ActorPoolStrategy(size=options.actors,
                                                                max_concurrent_calls_per_actor=ACTOR_BATCHES),
                             batch_size=options.batch_size, num_cpus=ACTOR_CPUS)
    summary = Summary()
    started = time.monotonic()
    options.dead_letters.parent.mkdir(parents=True, exist_ok=True)
    with options.dead_letters.open("a", encoding="utf-8") as dead, \
            tqdm(total=lines, unit="query", disable=not progress, file=sys.stderr) as bar:
        for row in results.iter_rows():
            summary.add(row)
            if on_row is not None:
                on_row(row)
            if row["status"] == "failed":
                dead.write(json.dumps({"line": row["text"], "query": row["query"], "reason": row["reason"],
                                       "version": version, "at": time.time()}, ensure_ascii=False) + "\n")
            bar.update(1)
    open_results(options, version).publish()
    for line in summary.lines(time.monotonic() - started):
        print(line)
    return summary
