"""`rmr eval`: Table 1 (and Table 2's ablations) on a labelled re-rank file, Table 3 on a labelled cover file,
the position-bias check, and the paired comparison of two saved runs.

    rmr eval --sample out/eval                                   # write the project's labelled sample set
    rmr eval --set rerank.jsonl --ranker fallback,input,random   # the floors, no server needed
    rmr eval --set rerank.jsonl --server 127.0.0.1:8001 --ablations --json run.json --predictions run.jsonl
    rmr eval --covers covers.jsonl --server 127.0.0.1:8001
    rmr eval --set rerank.jsonl --server 127.0.0.1:8001 --modes pointwise_rank,pointwise_signal
    rmr eval --set rerank.jsonl --server 127.0.0.1:8001 --shuffles 3
    rmr eval --compare before.json after.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from itertools import combinations
from pathlib import Path

from clients.eval.covers import cover_table, cover_text, grade_covers
from clients.eval.labelled import LabelledFileError, read_cover_set, read_rerank_set
from clients.eval.rankers import ABLATIONS, FLOORS, MODES, deployment, floor
from clients.eval.report import Run, compare, score, text_table
from ensemble.metrics import rbo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", type=Path, help="labelled re-rank file (JSONL; see clients/eval/labelled.py)")
    parser.add_argument("--covers", type=Path, help="labelled cover file (JSONL): Table 3 (needs --server)")
    parser.add_argument("--server", default="", help="a deployment's gRPC target: host:port, ip:port[,ip:port...] or "
                        "dns:///name:port (balanced, retried; TLS and key: the connection flags)")
    parser.add_argument("--ranker", default="", help=f"floor rankers, comma-separated: {', '.join(FLOORS)}")
    parser.add_argument("--ablations", action="store_true",
                        help=f"with --server: every row of Table 2 ({', '.join(ABLATIONS)})")
    parser.add_argument("--modes", default="", help=f"with --server: ranking modes beside the deployment's, "
                        f"comma-separated: {', '.join(MODES)}")
    parser.add_argument("--shuffles", type=int, default=0,
                        help="with --server: rank each query under K shuffled input orders, report mean pairwise RBO")
    parser.add_argument("--limit", type=int, default=0, help="only the first N queries (and covers)")
    parser.add_argument("--json", type=Path, help="write the table and per-query metrics (several runs: "
                        "run.json -> run.<ranker>.json)")
    parser.add_argument("--predictions", type=Path, help="write each query's prediction and label (JSONL; several "
                        "runs as --json)")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A.json", "B.json"),
                        help="difference of two saved runs with a paired randomisation test per metric")
    parser.add_argument("--sample", type=Path, help="write the project's labelled sample set into this folder")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if args.sample:
        rerank, covers = _sample(args.sample)
        print(f"wrote {rerank} and {covers}")
        return 0
    if args.compare:
        print(compare(*args.compare))
        return 0
    if not (args.set or args.covers):
        raise SystemExit("rmr eval needs --set, --covers, --compare or --sample")
    if (args.covers or args.ablations or args.shuffles or args.modes) and not args.server:
        raise SystemExit("--covers, --ablations, --modes and --shuffles need --server")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := [m for m in modes if m not in MODES]:
        raise SystemExit(f"--modes takes {', '.join(MODES)}; got {', '.join(unknown)}")
    try:
        queries = read_rerank_set(args.set)[: args.limit or None] if args.set else []
        covers = read_cover_set(args.covers)[: args.limit or None] if args.covers else []
    except LabelledFileError as error:
        raise SystemExit(str(error)) from None
    client = None
    if args.server:
        from clients.rerank_client import RerankClient

        from clients.connection import connection_from_args

        client = RerankClient(connection_from_args(args, url=args.server), timeout_s=300)
    try:
        runs = [_run(name, ranker, queries) for name, ranker in _rankers(args, client)] if queries else []
        if runs:
            print(text_table(runs, markdown=args.markdown))
            _save(runs, args)
        if args.shuffles and queries:
            print(_position_bias(deployment(client), queries, args.shuffles, args.seed))
        if covers:
            print(cover_text(cover_table(grade_covers(client, covers))))
    finally:
        if client is not None:
            client.close()
    return 0


def _sample(folder: Path):
    from clients.eval.sample import make_eval_set

    return make_eval_set(folder)


def _rankers(args, client):
    names = [n.strip() for n in args.ranker.split(",") if n.strip()]
    out = [(name, floor(name, args.seed)) for name in names]
    if client is not None:
        ablations = list(ABLATIONS) if args.ablations else ["full"]
        out += [(f"deployment:{a}" if a != "full" else "deployment", deployment(client, a)) for a in ablations]
        out += [(f"deployment:{m.strip()}", deployment(client, m.strip())) for m in args.modes.split(",") if m.strip()]
    if not out:
        raise SystemExit("nothing to rank with: give --server and/or --ranker")
    return out


def _run(name: str, ranker, queries) -> Run:
    rows = []
    for item in queries:
        predicted, said = ranker(item, item.candidates)
        rows.append({"query": item.query, "query_type": item.query_type, "predicted": predicted,
                     "label": item.label, "metrics": score(predicted, item.label), **said})
    return Run(name, rows)


def _save(runs: list[Run], args) -> None:
    for current in runs:
        if args.json:
            path = _per_run(args.json, current.name, len(runs))
            path.write_text(json.dumps(current.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
            print(f"wrote {path}")
        if args.predictions:
            path = _per_run(args.predictions, current.name, len(runs))
            current.write_predictions(path)
            print(f"wrote {path}")


def _per_run(path: Path, name: str, runs: int) -> Path:
    """`path` itself for one run; for several, ``run.json`` -> ``run.fallback.json``, ``run.deployment-no_covers.json``."""
    return path if runs == 1 else path.with_name(f"{path.stem}.{name.replace(':', '-')}{path.suffix}")


def _position_bias(ranker, queries, shuffles: int, seed: int) -> str:
    """Mean pairwise RBO of each query's rankings under `shuffles` input orders (1.0: order-independent)."""
    rng = random.Random(seed)
    per_query = []
    for item in queries:
        rankings = []
        for _ in range(shuffles):
            order = rng.sample(item.candidates, len(item.candidates))
            rankings.append(ranker(item, order)[0])
        pairs = [rbo(a, b) / rbo(b, b) for a, b in combinations(rankings, 2)]  # scaled: identical lists give 1
        per_query.append(statistics.fmean(pairs) if pairs else 1.0)
    return (f"position bias: {shuffles} shuffled input orders per query, mean pairwise RBO (1 = the order does not "
            f"depend on the input order) {statistics.fmean(per_query):.3f}, lowest {min(per_query):.3f}\n")


def main(argv: list[str] | None = None) -> int:
    from clients.connection import add_connection_arguments

    parser = argparse.ArgumentParser(prog="rmr eval", description=__doc__.split("\n\n")[0])
    add_connection_arguments(parser, url_flag="")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
