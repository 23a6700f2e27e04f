"""Retrieval for each planner sub-query, pluggable: candidates given with the query, an HTTP retriever, or an
embedded full-text index over a corpus file (the default, so a demo needs nothing else).

A candidate is a dict with the re-rank fields (``id``, ``title``, ``content``, ``publish_time``,
``click_through_rate``, ``completion_rate``) and, optionally, ``cover_path``: an image file the job reads and
sends as the candidate's cover (the server never fetches anything).

HTTP contract: ``POST <url>`` with ``{"query": "...", "k": 10}`` answers ``{"candidates": [...]}``.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ensemble.fallback import terms


class Retriever(Protocol):
    def retrieve(self, query: str, k: int) -> list[dict[str, Any]]: ...


def read_records(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL or Parquet file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class LocalIndex:
    """BM25 (bm25s) over a corpus file's titles and contents, with the words and CJK characters and bigrams
    the fallback ranker uses, so Chinese queries match without a segmenter."""

    def __init__(self, corpus: Path) -> None:
        import bm25s

        self.documents = []
        for row in read_records(corpus):
            document = {k: v for k, v in row.items() if v is not None}
            if document.get("cover_path") and not Path(document["cover_path"]).is_absolute():
                document["cover_path"] = str(corpus.parent / document["cover_path"])
            self.documents.append(document)
        self._index = bm25s.BM25()
        self._index.index([sorted(terms(f"{d.get('title', '')} {d.get('content', '')}")) or ["\0"]
                           for d in self.documents], show_progress=False)
        self._vocabulary = set(self._index.vocab_dict)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled (the job ships one index to every actor), the index's arrays carry copies of their dtypes,
        and numpy's `ufunc.at`, which bm25s scores with, leaves its fast path for anything but the builtin
        dtype instances: scoring took most of an actor's CPU (`bench.batch_throughput`: the job's client CPU was
        8.2 ms a query, 4.0 once fixed). Each array is viewed (not copied) as the builtin dtype of its name."""
        self.__dict__.update(state)
        scores = self._index.scores
        for key in ("data", "indices", "indptr"):
            scores[key] = scores[key].view(np.dtype(scores[key].dtype.name))

    def retrieve(self, query: str, k: int) -> list[dict[str, Any]]:
        tokens = sorted(t for t in terms(query) if t in self._vocabulary)
        if not tokens or not self.documents:
            return []
        found, scores = self._index.retrieve([tokens], k=min(k, len(self.documents)), show_progress=False)
        return [dict(self.documents[int(i)]) for i, score in zip(found[0], scores[0]) if score > 0]


class HttpRetriever:
    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def retrieve(self, query: str, k: int) -> list[dict[str, Any]]:
        body = json.dumps({"query": query, "k": k}, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
            candidates = json.loads(answer.read()).get("candidates")
        if not isinstance(candidates, list):
            raise ValueError(f"retriever {self.url} answered without a candidates list")
        return candidates[:k]
