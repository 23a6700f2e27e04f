"""One query of the day, end to end: plan (query + session) -> retrieval per sub-query -> C(Q) merged -> the
re-rank with covers (grades from the store first, on the server) -> the result the backend will read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.batch.retrieval import Retriever
from clients.rerank_client import AsyncRerankClient, RerankClient
from ensemble.candidate import REQUEST_FIELDS
from ensemble.merge import merge_candidates


class LineError(ValueError):
    """An input line the job cannot run: goes to the dead-letter file with this reason."""


@dataclass(frozen=True)
class QueryLine:
    query: str
    session: list[str]
    candidates: list[dict[str, Any]] | None
    """Given with the query (the backend exported them): retrieval is skipped."""


def parse_line(raw: str | dict[str, Any]) -> QueryLine:
    """``{"query": "...", "session": ["..."], "candidates": [...]}``; session and candidates are optional."""
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as error:
        raise LineError(f"line is not JSON ({error.msg})") from None
    if not isinstance(data, dict):
        raise LineError("line must be a JSON object")
    query, session, candidates = data.get("query"), data.get("session") or [], data.get("candidates")
    if not isinstance(query, str) or not query.strip():
        raise LineError("query is required and must be non-empty text")
    if not isinstance(session, list) or not all(isinstance(s, str) for s in session):
        raise LineError("session must be an array of text")
    if candidates is not None and (not isinstance(candidates, list) or not all(isinstance(c, dict) for c in candidates)):
        raise LineError("candidates must be an array of objects")
    return QueryLine(query, session, candidates)


class Chain:
    def __init__(self, retriever: Retriever | None, *, k: int = 10, max_candidates: int | None = None,
                 options: dict[str, Any] | None = None) -> None:
        """`max_candidates`: C(Q) is cut there; by default the pipeline's limit (rich_media_reranker ranks a
        list longer than one window in windows). `options`: the re-rank request's (e.g. pointwise grades)."""
        from ensemble.config import PipelineConfig

        self.retriever = retriever
        self.k = k
        self.options = options or None
        self.max_candidates = max_candidates or PipelineConfig.load().limits.max_candidates

    def candidates(self, line: QueryLine, plan: dict[str, Any]) -> list[dict[str, Any]]:
        """C(Q): the given candidates, or the union of each sub-query's top k, each reached dimension kept."""
        if line.candidates is not None:
            return merge_candidates([((), line.candidates)])[: self.max_candidates]
        if self.retriever is None:
            raise LineError("line has no candidates and the job has no retriever")
        retrieved = [(sub.get("intent_dimensions", []), self.retriever.retrieve(sub["sub_query"], self.k))
                     for sub in plan["sub_queries"]]
        return merge_candidates(retrieved)[: self.max_candidates]

    def __call__(self, client: RerankClient, line: QueryLine) -> tuple[dict[str, Any], dict[str, Any]]:
        """(plan, re-rank response). Raises LineError, or RerankError from the server."""
        plan = client.plan(line.query, line.session).raw
        request, covers = self.rerank_request(line, plan)
        return plan, client.rerank(line.query, request, cover_images=covers or None, options=self.options).response

    async def run_async(self, client: AsyncRerankClient, line: QueryLine) -> tuple[dict[str, Any], dict[str, Any]]:
        """The same chain over an asyncio client: one process keeps many queries in flight."""
        plan = (await client.plan(line.query, line.session)).raw
        request, covers = self.rerank_request(line, plan)
        return plan, (await client.rerank(line.query, request, cover_images=covers or None,
                                          options=self.options)).response

    def rerank_request(self, line: QueryLine, plan: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
        """C(Q) as re-rank candidates, and the covers their `cover_path`s name."""
        merged = self.candidates(line, plan)
        if not merged:
            raise LineError("no candidate retrieved for any sub-query")
        covers = {}
        for candidate in merged:
            path = candidate.get("cover_path")
            if path and Path(path).is_file():
                covers[str(candidate["id"])] = Path(path).read_bytes()
        return [{k: v for k, v in c.items() if k in REQUEST_FIELDS} for c in merged], covers
