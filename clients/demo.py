"""The CPU demo: tiny checkpoints -> real tritonserver -> one rich-media query through every step over gRPC,
then a small T+1 job (a day's queries on a local Ray, the embedded index and store) and one result looked up.

    make demo                                   # tiny random-weight models
    RERANKER_CKPT=/ckpt/qwen3-4b VLM_CKPT=/ckpt/qwen2.5-vl make demo   # real checkpoints (slow on CPU)
    ... POSTRANK_CKPT=/ckpt/postrank make demo  # and a post-ranker of one's own (else the post-rank step is refused)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
import time
from pathlib import Path

from clients.rerank_client import RerankClient, RerankError
from clients.samples import SAMPLE_USER, load_sample, split_sample, with_features
from server.host.launcher import LaunchError, TritonServer

RULE = "-" * 100


class Sections:
    """Prints the demo's section headings, numbered in the order they print (no two share a number)."""

    def __init__(self) -> None:
        self.titles: list[str] = []

    def __call__(self, title: str) -> None:
        self.titles.append(title)
        print(f"\n{RULE}\n{len(self.titles)}. {title}\n{RULE}")


def _cell(text: str, width: int) -> str:
    text = text.replace("\n", " ")
    out, used = "", 0
    for ch in text:
        w = 2 if ord(ch) > 0x2E7F else 1  # CJK characters take two columns in a terminal
        if used + w > width - 1:
            return out + "…" + " " * (width - used - 1)
        out, used = out + ch, used + w
    return out + " " * (width - used)


def run_demo(client: RerankClient, tiny: bool, section: Sections) -> bool:
    sample = load_sample()
    candidates, covers = split_sample(sample)
    ok = True

    section(f"Query planner   query={sample['query']!r}  session={sample['session']}")
    plan = client.plan(sample["query"], sample["session"])
    print(f"query type: {plan.query_type}")
    for sub in plan.sub_queries:
        print(f"  sub-query: {sub['sub_query']!r}  intent dimensions: {sub['intent_dimensions'] or 'none'}")
    if plan.degraded:
        print(f"DEGRADED: the model's plan was unusable ({'; '.join(plan.raw['issues'])}); "
              "the original query stands in as a simple query.")

    section(f"Cover evaluator on one cover ({candidates[0]['id']})")
    first = covers[candidates[0]["id"]]
    for task in ("relevance", "quality"):
        grade = client.evaluate_cover(first, task=task, query=sample["query"])
        print(f"  {task:9}: {grade.grade if grade.grade is not None else 'unknown (model gave no usable grade)'}")

    section(f"Rich-media re-rank of {len(candidates)} candidates ({len(covers)} with covers), over gRPC")
    started = time.perf_counter()
    result = client.rerank(sample["query"], candidates, cover_images=covers)
    elapsed = (time.perf_counter() - started) * 1000
    response = result.response
    by_id = {c["id"]: c for c in candidates}
    grades = {g["id"]: g for g in response["cover_grades"]}
    print(f"{'rank':>4}  {'id':10} {'title':44} {'cover rel':>9} {'cover qual':>10}  source")
    for rank, doc_id in enumerate(result.ranked_ids, start=1):
        g = grades[doc_id]
        show = lambda v: "-" if v is None else str(v)  # noqa: E731
        print(f"{rank:>4}  {doc_id:10} {_cell(by_id[doc_id]['title'], 44)} {show(g['relevance']):>9} "
              f"{show(g['quality']):>10}  {g['source']['relevance']}/{g['source']['quality']}")
    ok &= sorted(result.ranked_ids) == sorted(by_id)

    section("What happened")
    if response.get("constrained"):
        forced = "closed by the pipeline at its budget" if response.get("budget_forced") else "closed by the model"
        print(f"Answer decoded under constraints: a permutation of 1..{len(candidates)} by construction. Thinking: "
              f"{forced} (budget {response.get('thinking_budget')} tokens).")
    if response["valid"]:
        print("The model's ranking was a clean permutation and was used as is.")
    elif response["fallback"]:
        print(f"The model's answer was NOT usable ({response['fallback_reason']}): the ranking above is the "
              "principle fallback ranker's (relevance, novelty, cover grades, engagement, freshness).")
    else:
        print("The model's answer was REPAIRED before use:")
    for repair in response["repairs"]:
        print(f"  - {repair['message']}")
    if response["cover_errors"]:
        print("cover evaluations that failed (grades left unknown):", *response["cover_errors"], sep="\n  - ")
    cache = response.get("cover_cache", {})
    print(f"cover grading: {cache.get('evaluated', 0)} evaluations, {cache.get('hits', 0)} from the cover-grade cache, "
          f"{cache.get('deduplicated', 0)} repeats skipped")
    timings = response["timings_ms"]
    print(f"timings: covers {timings['covers']:.0f} ms, re-rank {timings['rerank']:.0f} ms, "
          f"total in server {timings['total']:.0f} ms, round trip {elapsed:.0f} ms; "
          f"{response['output_tokens']} tokens generated")

    section("Pointwise graders: a grade per candidate, then ranked by it (options.pointwise = \"rank\")")
    grades = {g.id: g.grade for g in client.grade(sample["query"], candidates, grader="experience",
                                                  cover_images=covers)}
    ranked = client.rerank(sample["query"], candidates, cover_images=covers,
                           options={"pointwise": "rank", "grader": "relevance"}).response
    relevance = {g["id"]: g["grade"] for g in ranked["pointwise"]["grades"]}
    print(f"{'rank':>4}  {'id':10} {'title':44} {'relevance 0-4':>13} {'experience 1-4':>14}")
    for rank, doc_id in enumerate(ranked["ranked_ids"], start=1):
        show = lambda v: "unknown" if v is None else str(v)  # noqa: E731
        print(f"{rank:>4}  {doc_id:10} {_cell(by_id[doc_id]['title'], 44)} {show(relevance[doc_id]):>13} "
              f"{show(grades[doc_id]):>14}")
    print(f"ranked by {ranked['ranked_by']} (no listwise call) in {ranked['timings_ms']['total']:.0f} ms; "
          "candidates with a cover were graded by the VLM with it, the others by the text model")
    ok &= sorted(ranked["ranked_ids"]) == sorted(by_id)
    ok &= run_postrank(client, sample["query"], candidates, covers, section)
    if tiny:
        print(textwrap.fill(
            "Note: these are tiny models with RANDOM weights. Constrained decoding makes their answers valid "
            "(every id once, grades on their scale), but the order and the grades themselves are arbitrary: valid format says "
            "nothing about quality. With constraints off (constrain_answer = false in the pipeline config) the same "
            "models write nonsense and the repair and fallback-ranker path takes over. Point RERANKER_CKPT and "
            "VLM_CKPT at trained checkpoints for real answers.", width=100))
    return ok


def run_postrank(client: RerankClient, query: str, candidates: list[dict], covers: dict[str, bytes],
                 section: Sections) -> bool:
    """options.post_rank: the re-rank's head post-ranked from features as soft tokens; the list judge compares."""
    section("Post-ranker (seed 004): the head re-ordered from its features as soft tokens (options.post_rank)")
    featured = with_features(candidates)
    try:
        post = client.rerank(query, featured, cover_images=covers, options={"post_rank": True}, user=SAMPLE_USER)
    except RerankError as error:
        if error.is_invalid_argument and "options.post_rank needs a post-ranker" in error.message:
            print("skipped: this deployment has no post-ranker (RERANKER_CKPT without POSTRANK_CKPT)")
            return True
        raise
    report = post.response["post_rank"]
    if not report["applied"]:
        print(f"post-rank not applied: {report['error']}")
        return False
    print(f"top {report['top_k']} after the post-rank: {post.ranked_ids[:report['top_k']]}")
    print(f"  (positions of the re-rank's head, best first: {report['outcome']['order']}); ranked by "
          f"{post.response['ranked_by']}, post-rank {report['ms']:.0f} ms; each candidate's "
          f"{len(featured[0]['features'])} features and the user's {len(SAMPLE_USER)} reached the model as one token each")
    verdict = client.judge(query, featured, post.ranked_ids, [c["id"] for c in featured], user=SAMPLE_USER)
    print(f"list judge, post-ranked list (A) against the request's order (B): {verdict['better']}")
    return sorted(post.ranked_ids) == sorted(c["id"] for c in candidates) and verdict["better"] in ("A", "B")


def run_tplus1(grpc_url: str, folder: Path, section: Sections) -> bool:
    """`rmr batch` on a sample day, then `rmr lookup` of its first query: what a backend does the next day."""
    import json
    import subprocess

    from clients.batch.sample import make_sample_day

    section("T+1: a day's queries re-ranked offline on Ray, into the result store (rmr batch)")
    log, corpus = make_sample_day(folder, queries=4)
    store = f"sqlite:///{folder.resolve()}/results.sqlite"
    command = [sys.executable, "-m", "clients.cli", "batch", "--queries", str(log), "--corpus", str(corpus),
               "--store", store, "--server", grpc_url, "--num-cpus", "2", "--quiet",
               "--dead-letters", str(folder / "dead_letters.jsonl")]
    print("$ rmr batch --queries", log, "--corpus", corpus, "--store", store, "--server", grpc_url, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    print(done.stdout.strip())
    query = json.loads(log.read_text(encoding="utf-8").splitlines()[0])["query"]
    with RerankClient(grpc_url) as client:
        result = client.cached_ranking(query, store_url=store)
    print(f"\n$ rmr lookup {query!r} --store {store}")
    if result is None:
        print("no stored result", done.stderr[-1500:])
        return False
    print(f"  ranked ids: {result['ranked_ids']}")
    sub_queries = [s["sub_query"] for s in result["plan"]["sub_queries"]]
    print(f"  plan: {result['plan']['query_type']}, sub-queries {sub_queries}")
    print(f"  valid {result['valid']}, fallback {result['fallback']}, version {result['version']}")
    return done.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default=".cache")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from build.profile import resolve_checkpoints
    from build.render import render

    reranker, vlm = os.environ.get("RERANKER_CKPT", ""), os.environ.get("VLM_CKPT", "")
    print("Preparing checkpoints and the CPU model repository ...", flush=True)
    ckpts = resolve_checkpoints(reranker, vlm, "", args.cache, os.environ.get("POSTRANK_CKPT", ""))
    repository = render("cpu", Path(args.cache) / "model_repository-demo", ckpts)
    server = TritonServer.on_free_ports(repository, Path(args.cache) / "demo")
    grpc_port = server.options.grpc_port
    print(f"Starting tritonserver on 127.0.0.1:{grpc_port} (log: {server.log_path}) ...", flush=True)
    sections = Sections()
    try:
        with server:
            with RerankClient(f"127.0.0.1:{grpc_port}", timeout_s=300) as client:
                ok = run_demo(client, not (reranker and vlm), sections)
            ok = run_tplus1(f"127.0.0.1:{grpc_port}", Path(args.cache) / "demo-day", sections) and ok
    except (LaunchError, RerankError) as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
    print(f"\nServer stopped. Demo {'passed' if ok else 'FAILED: the ranking lost or duplicated ids'}.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
