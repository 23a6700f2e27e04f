"""A small day the project makes itself: a query log and a corpus with cover files, from a workload description
(`bench/workloads/*.json`), so the demo and the tests run the T+1 job with nothing else."""

from __future__ import annotations

import json
from pathlib import Path

from clients.samples import with_features
from clients.workload import Workload

ROOT = Path(__file__).resolve().parents[2]


def make_sample_day(folder: Path, *, workload: Path = ROOT / "bench/workloads/smoke.json", queries: int = 8,
                    bad_lines: tuple[str, ...] = (), distinct: bool = False) -> tuple[Path, Path]:
    """(queries.jsonl, corpus.jsonl) under `folder`; covers in folder/covers/. `bad_lines` are appended to the
    query log as they are (to show the dead-letter file). `distinct`: every query its own (numbered), as in a
    day's log of distinct queries; otherwise the workload's few queries repeat."""
    spec = Workload.load(workload).spec
    pool = Workload({**spec, "pool": max(queries, 1)}).requests()
    covers = folder / "covers"
    covers.mkdir(parents=True, exist_ok=True)
    documents = {}
    texts = [f"{r.query} {n}" if distinct else r.query for n, r in enumerate(pool)]
    for text, request in zip(texts, pool):
        for candidate, cover in zip(request.candidates, request.covers):
            document = {k: v for k, v in candidate.items() if k not in ("cover_relevance", "cover_quality")}
            document["title"] = f"{text} {document['title']}"  # retrieved for this query
            [document] = with_features([document], seed=len(documents))  # what `rmr batch --post-rank` reads
            if cover:
                (covers / f"{candidate['id']}.jpg").write_bytes(cover)
                document["cover_path"] = f"covers/{candidate['id']}.jpg"
            documents.setdefault(document["id"], document)
    corpus = folder / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents.values()), encoding="utf-8")
    log = folder / "queries.jsonl"
    lines = [json.dumps({"query": text, "session": r.session}, ensure_ascii=False)
             for text, r in zip(texts[:queries], pool)]
    log.write_text("\n".join([*lines, *bad_lines]) + "\n", encoding="utf-8")
    return log, corpus
