"""Each distinct query of a job runs once: the first line of a query claims it, and later lines equal to it after
the result key's normalisation (`normalise_query`: NFKC, case, whitespace) are counted as duplicates, not run.

One `QueryClaims` per job, a Ray actor every worker asks once per batch, so the rule holds across actors and
machines. It keeps 16-byte digests, not the queries: a day of a million distinct queries holds about 100 MB.
A rerun is a new job with new claims; what the first run stored is skipped by the result store as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from clients.batch.results import normalise_query


def query_digest(query: str) -> bytes:
    return hashlib.blake2b(normalise_query(query).encode("utf-8"), digest_size=16).digest()


class QueryClaims:
    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def claim(self, queries: Sequence[str]) -> list[bool]:
        """For each query in order: True when it is the first of its kind this job has seen."""
        first = []
        for digest in map(query_digest, queries):
            first.append(digest not in self._seen)
            self._seen.add(digest)
        return first
