"""`rmr batch`'s command line: the T+1 job's options (clients/batch/job.py runs it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from clients.batch.job import JobOptions, run_job
from clients.batch.results import DEFAULT_TTL_S
from clients.connection import connection_from_args
from ensemble.pointwise.request import Grader, PointwiseUse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queries", type=Path, required=True, help="the day's queries: JSONL or Parquet")
    parser.add_argument("--store", required=True, help="result store: redis://... or sqlite:///file")
    parser.add_argument("--server", required=True, help="Triton gRPC endpoints, host:port[,host:port...], or "
                        "dns:///name:port (one endpoint balanced by gRPC); TLS and key: the connection flags")
    retrieval = parser.add_mutually_exclusive_group()
    retrieval.add_argument("--corpus", type=Path, help="JSONL or Parquet of documents: the embedded BM25 index")
    retrieval.add_argument("--retriever-url", default="", help="an HTTP retriever (POST {query, k})")
    parser.add_argument("--k", type=int, default=10, help="documents retrieved per sub-query")
    parser.add_argument("--dead-letters", type=Path, default=Path("dead_letters.jsonl"))
    parser.add_argument("--actors", type=int, default=2, help="Ray actors (processes), each with a gRPC client "
                        "per endpoint")
    parser.add_argument("--concurrency", type=int, default=JobOptions.concurrency,
                        help="queries each actor keeps in flight (actors x concurrency in all)")
    parser.add_argument("--batch-size", type=int, default=JobOptions.batch_size, help="queries an actor takes at a time")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--ray-address", default="", help="an existing Ray cluster (e.g. ray://head:10001)")
    parser.add_argument("--ttl-hours", type=float, default=DEFAULT_TTL_S / 3600, help="0 = results never expire")
    parser.add_argument("--backoff", type=float, default=5.0, help="seconds an UNAVAILABLE endpoint is left alone")
    parser.add_argument("--pointwise", choices=[u.value for u in PointwiseUse], default="off",
                        help="pointwise grades as a listwise signal, or ranking by them alone (no listwise call)")
    parser.add_argument("--pointwise-grader", choices=[g.value for g in Grader], default=Grader.RELEVANCE.value)
    parser.add_argument("--post-rank", action="store_true", help="post-rank each result's head with the post-ranker "
                        "(documents carry `features` in the post-ranker's schema; ensemble/postrank/)")
    parser.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    options = JobOptions(args.queries, args.store, tuple(e.strip() for e in args.server.split(",") if e.strip()),
                         corpus=args.corpus.resolve() if args.corpus else None, retriever_url=args.retriever_url,
                         dead_letters=args.dead_letters, k=args.k, actors=args.actors,
                         concurrency=args.concurrency, num_cpus=args.num_cpus,
                         batch_size=args.batch_size,
                         ray_address=args.ray_address, ttl_s=args.ttl_hours * 3600, backoff_s=args.backoff,
                         store_base=Path.cwd(), pointwise=args.pointwise, pointwise_grader=args.pointwise_grader,
                         post_rank=args.post_rank,
                         connection=connection_from_args(args, url="localhost:8001"))
    summary = run_job(options, progress=not args.quiet)
    return 1 if summary.statuses["failed"] else 0
