"""`rmr`: the project's one command line. Serve, render a repository, and call a running server.

    rmr serve                      # tritonserver on the CPU target in the foreground (Ctrl-C stops it)
    rmr render --target a10 --out repo-a10
    rmr rerank request.json [--image doc-3=cover.jpg ...]
    rmr plan "北京旅游攻略" --session "Cheap hotels in Beijing"
    rmr cover cover.jpg --task relevance --query "北京旅游攻略"
    rmr grade request.json --grader experience   # a pointwise grade per candidate (covers: the VLM grades)
    rmr postrank request.json      # the post-ranker's order of candidates with features ("list_a"/"list_b": the judge)
    rmr covers images/             # grade every cover's quality once, into the server's grade store
    rmr batch --queries day.jsonl --corpus corpus.jsonl --store redis://... --server h1:8001,h2:8001
    rmr lookup "北京旅游攻略" --store redis://...
    rmr eval --set rerank.jsonl --server 127.0.0.1:8001 --ablations   # Tables 1-3 (see rmr eval --help)

A request file holds ``{"query": ..., "candidates": [...], "options": {...}}`` (and ``"user"``, the user's
features, for the post-ranker and options.post_rank). A candidate may name its cover
as ``"cover_path"`` (relative to the file) or, in the bundled samples, a ``"cover"`` drawing spec.
Exit status: 0 on success, 2 when the server refuses the request, 1 on any other failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clients.connection import add_connection_arguments, connection_from_args
from clients.rerank_client import RerankClient, RerankError
from clients.samples import make_cover
from ensemble.outcome_counts import response_kind
from ensemble.pointwise.request import Grader


def _load_request(path: Path, images: list[str]) -> tuple[dict, dict[str, bytes]]:
    body = json.loads(path.read_text(encoding="utf-8"))
    covers: dict[str, bytes] = {}
    candidates = []
    for item in body.get("candidates", []):
        item = dict(item)
        spec, cover_path = item.pop("cover", None), item.pop("cover_path", None)
        if cover_path:
            covers[str(item.get("id"))] = (path.parent / cover_path).read_bytes()
        elif spec:
            covers[str(item.get("id"))] = make_cover(spec)
        candidates.append(item)
    for pair in images:
        doc_id, _, file = pair.partition("=")
        if not file:
            raise SystemExit(f"--image takes ID=PATH, got {pair!r}")
        covers[doc_id] = Path(file).read_bytes()
    body["candidates"] = candidates
    return body, covers


def _rerank(client: RerankClient, args) -> None:
    body, covers = _load_request(Path(args.request), args.image)
    result = client.rerank(body["query"], body["candidates"], cover_images=covers or None, options=body.get("options"),
                           user=body.get("user"))
    titles = {str(c["id"]): c.get("title", "") for c in body["candidates"]}
    if args.json:
        print(json.dumps(result.response, ensure_ascii=False, indent=2))
        return
    for rank, doc_id in enumerate(result.ranked_ids, start=1):
        print(f"{rank:>3}. {doc_id}  {titles.get(doc_id, '')}")
    r = result.response
    kind = response_kind(r)
    state = {"valid": "model ranking used", "repaired": "model ranking repaired",
             "fallback": f"fallback ranker ({r['fallback_reason']})", "pointwise": "ranked by pointwise grade",
             "none": "not re-ranked (options.rerank false)"}.get(kind, kind)
    repairs = [repair["message"] for repair in r["repairs"]]
    print(f"-- {state}; repairs: {repairs or 'none'}; timings ms: {r['timings_ms']}")
    if r.get("pointwise"):
        known = [g["grade"] for g in r["pointwise"]["grades"] if g["grade"] is not None]
        print(f"-- pointwise {r['pointwise']['grader']} grades as {r['pointwise']['use']}: {len(known)} of "
              f"{len(r['pointwise']['grades'])} known; ranked by {r['ranked_by']}")
    if r.get("post_rank"):
        p = r["post_rank"]
        print(f"-- post-rank of the top {p['top_k']}: " + ("applied" if p["applied"] else f"not applied ({p['error']})"))
    if r.get("windows"):
        kinds = [w["outcome"] for w in r["windows"]]
        print(f"-- {len(kinds)} windows (rerank_window): {kinds.count('valid')} valid, {kinds.count('repaired')} "
              f"repaired, {kinds.count('fallback')} fell back")


def _grade(client: RerankClient, args) -> None:
    body, covers = _load_request(Path(args.request), args.image)
    grades = client.grade(body["query"], body["candidates"], grader=args.grader, cover_images=covers or None)
    if args.json:
        print(json.dumps([{"id": g.id, "grade": g.grade, "reasoning": g.reasoning} for g in grades],
                         ensure_ascii=False, indent=2))
        return
    titles = {str(c["id"]): c.get("title", "") for c in body["candidates"]}
    for g in grades:
        print(f"{'?' if g.grade is None else g.grade:>3}  {g.id}  {titles.get(g.id, '')}")
    unknown = sum(g.grade is None for g in grades)
    print(f"-- {args.grader} grades of {len(grades)} candidates ({len(covers)} with a cover, graded by the VLM); "
          f"{unknown} unknown")


def _postrank(client: RerankClient, args) -> None:
    """The post-ranker's order; with ``list_a`` and ``list_b`` in the file, the list judge's verdict instead."""
    body = json.loads(Path(args.request).read_text(encoding="utf-8"))
    items = body["candidates"]
    if "list_a" in body or "list_b" in body:
        verdict = client.judge(body["query"], items, body.get("list_a", []), body.get("list_b", []),
                               user=body.get("user", {}))
        print(json.dumps(verdict, ensure_ascii=False, indent=2))
        return
    result = client.post_rank(body["query"], items, user=body.get("user", {}), options=body.get("options", {}))
    if args.json:
        print(json.dumps(result.response, ensure_ascii=False, indent=2))
        return
    for rank, doc_id in enumerate(result.ranked_ids, start=1):
        print(f"{rank:>3}. {doc_id}")
    state = "valid" if result.response["valid"] else f"repaired: {[r['message'] for r in result.response['repairs']]}"
    print(f"-- post-ranked {len(items)} candidates from their features ({state})")


def _lookup(args) -> int:
    from clients.batch.results import cached_ranking
    from store import StoreError, checked_store

    try:  # a reader: a sqlite file that is not there is refused, never created empty
        store = checked_store(args.store, timeout_s=5.0, create=False)
        result = cached_ranking(store, args.query, version=args.version)
    except StoreError as error:
        print(f"rmr lookup: {error}", file=sys.stderr)
        return 1
    if result is None:
        print(f"no stored result for {args.query!r}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rmr", description=__doc__.split("\n\n")[0])
    add_connection_arguments(parser)  # for every command that calls a server (rerank, covers, eval, batch, ...)
    parser.add_argument("--timeout", type=float, default=60.0, help="client-side deadline, seconds")
    sub = parser.add_subparsers(dest="command", required=True)
    from build import render
    from clients import covers
    from clients.eval import cli as evaluation
    from clients.batch import cli as job
    from server.host import cli as serve

    serve.add_arguments(sub.add_parser("serve", help="serve the CPU target with tritonserver in the foreground"))
    render.add_arguments(sub.add_parser("render", help="render a model repository for a target (cpu, a10, a800)"))
    covers.add_arguments(sub.add_parser("covers", help="grade the quality of a folder or manifest of covers once, "
                                        "into the server's grade store (resumable)"))
    job.add_arguments(sub.add_parser("batch", help="T+1: a day's queries through the whole chain on Ray, "
                                     "into the result store (resumable)"))
    evaluation.add_arguments(sub.add_parser("eval", help="offline evaluation on a labelled set: Table 1 per "
                                            "query type, ablations, cover accuracy, position bias, comparisons"))
    lookup = sub.add_parser("lookup", help="the stored T+1 result of a query")
    lookup.add_argument("query")
    lookup.add_argument("--store", required=True, help="result store: redis://... or sqlite:///file")
    lookup.add_argument("--version", help="a deployment version (default: the latest completed job's)")
    rerank = sub.add_parser("rerank", help="re-rank the candidates of a JSON request file")
    rerank.add_argument("request")
    rerank.add_argument("--image", action="append", default=[], metavar="ID=PATH", help="cover image of candidate ID")
    rerank.add_argument("--json", action="store_true", help="print the whole response as JSON")
    grade = sub.add_parser("grade", help="a pointwise grade per candidate of a JSON request file")
    grade.add_argument("request")
    grade.add_argument("--grader", choices=[g.value for g in Grader], default=Grader.RELEVANCE.value,
                       help="its template and scale (config [pointwise])")
    grade.add_argument("--image", action="append", default=[], metavar="ID=PATH", help="cover image of candidate ID")
    grade.add_argument("--json", action="store_true", help="print grades and reasoning as JSON")
    postrank = sub.add_parser("postrank", help="post-rank candidates by their features (the post-ranker); with "
                              "list_a/list_b in the file, which order is better (the list judge)")
    postrank.add_argument("request")
    postrank.add_argument("--json", action="store_true", help="print the whole outcome as JSON")
    plan = sub.add_parser("plan", help="run the query planner")
    plan.add_argument("query")
    plan.add_argument("--session", action="append", default=[], help="an earlier query of the session (repeat)")
    cover = sub.add_parser("cover", help="grade one cover image")
    cover.add_argument("image")
    cover.add_argument("--task", choices=("relevance", "quality"), default="quality")
    cover.add_argument("--query", default="")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve.run(args)
    if args.command == "render":
        return render.run(args)
    if args.command == "covers":
        return covers.run(args)
    if args.command == "eval":
        return evaluation.run(args)
    if args.command == "batch":
        return job.run(args)
    if args.command == "lookup":
        return _lookup(args)
    try:
        with RerankClient(connection_from_args(args), timeout_s=args.timeout) as client:
            if args.command == "rerank":
                _rerank(client, args)
            elif args.command == "grade":
                _grade(client, args)
            elif args.command == "postrank":
                _postrank(client, args)
            elif args.command == "plan":
                print(json.dumps(client.plan(args.query, args.session).raw, ensure_ascii=False, indent=2))
            else:
                grade = client.evaluate_cover(Path(args.image).read_bytes(), task=args.task, query=args.query)
                print(json.dumps({"grade": grade.grade, "reasoning": grade.reasoning}, ensure_ascii=False))
    except RerankError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2 if error.is_invalid_argument else 1
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
