"""Re-ranked results as the search backend reads them: one GET per query.

Key:   ``rmr:rank:<version>:<normalised query>``; the query is Unicode NFKC, case-folded, whitespace collapsed
       (`normalise_query`), the version is the deployment's `model_version` (checkpoints and prompts).
Value: JSON, UTF-8: ``{"query", "ranked_ids", "plan", "cover_grades", "valid", "repairs", "fallback",
       "fallback_reason", "version", "written_at"}`` (`written_at`: Unix seconds).
``rmr:rank:latest`` holds the version whose job last completed: a backend reads it, then the query's key, so a
new day's results (or a new checkpoint's) become visible only once their job has finished.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Sequence
from typing import Any

from store.base import Store

PREFIX = "rmr:rank:"
LATEST_KEY = PREFIX + "latest"
DEFAULT_TTL_S = 2 * 86400.0


def normalise_query(query: str) -> str:
    """``"  北京　旅游 ATTRACTIONS "`` -> ``"北京 旅游 attractions"``."""
    return " ".join(unicodedata.normalize("NFKC", query).casefold().split())


def result_key(version: str, query: str) -> str:
    return f"{PREFIX}{version}:{normalise_query(query)}"


def result_value(query: str, response: dict[str, Any], plan: dict[str, Any], version: str) -> bytes:
    record = {"query": query, "ranked_ids": response["ranked_ids"], "plan": plan,
              "cover_grades": response.get("cover_grades", []), "valid": response.get("valid"),
              "repairs": response.get("repairs", []), "fallback": response.get("fallback"),
              "fallback_reason": response.get("fallback_reason"), "ranked_by": response.get("ranked_by"),
              "pointwise": response.get("pointwise"), "windows": len(response.get("windows") or ()),
              "post_rank": response.get("post_rank"),
              "version": version, "written_at": time.time()}
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


class ResultStore:
    def __init__(self, store: Store, version: str, *, ttl_s: float | None = DEFAULT_TTL_S) -> None:
        self.store = store
        self.version = version
        self.ttl_s = ttl_s

    def stored(self, queries: Sequence[str]) -> list[bool]:
        """Whether each query already has a result of this version (one round trip)."""
        return [value is not None for value in self.store.get_many([result_key(self.version, q) for q in queries])]

    def put(self, query: str, value: bytes) -> None:
        self.store.set_many([(result_key(self.version, query), value, self.ttl_s)])

    def publish(self) -> None:
        """Make this version the one lookups read."""
        self.store.set_many([(LATEST_KEY, self.version.encode(), None)])


def cached_ranking(store: Store, query: str, *, version: str | None = None) -> dict[str, Any] | None:
    """The stored result of `query` (of `version`, or of the latest completed job), or None."""
    if version is None:
        [latest] = store.get_many([LATEST_KEY])
        if latest is None:
            return None
        version = latest.decode()
    [value] = store.get_many([result_key(version, query)])
    return json.loads(value) if value is not None else None
