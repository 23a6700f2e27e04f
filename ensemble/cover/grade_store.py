"""Cover grades as shared data: versioned keys, values checked on the way in and out, counts per task.

The store itself is anything with `get_many(keys) -> values | None` and `set_many(items) -> bool` that
returns None / False instead of raising when it cannot answer (store/guarded.py): a grade the store cannot
give is computed, never failed.

Key: ``rmr:grade:<version>:<task>:<image digest>`` and, for relevance, ``:<query digest>``. Value: the grade's
digit, ``1``..``4``. Anything else found under a key is ignored (counted ``invalid``) and recomputed.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ensemble.cover.request import CoverTask

GRADE_VALUES = {str(g).encode(): g for g in (1, 2, 3, 4)}


class KeyValueStore(Protocol):
    def get_many(self, keys: Sequence[str]) -> list[bytes | None] | None: ...
    def set_many(self, items: Sequence[tuple[str, bytes, float | None]]) -> bool: ...


@dataclass(frozen=True, slots=True)
class GradeRef:
    task: CoverTask
    query: str
    digest: bytes
    """The image's `image_key`."""


class GradeStore:
    def __init__(self, store: KeyValueStore, versions: dict[CoverTask, str], *, relevance_ttl_s: float | None,
                 quality_ttl_s: float | None) -> None:
        self.store = store
        self.versions = versions
        self.ttl = {CoverTask.RELEVANCE: relevance_ttl_s, CoverTask.QUALITY: quality_ttl_s}
        self.counts: Counter[tuple[str, str]] = Counter()
        """(hits | misses | invalid | unavailable, task) -> grades."""

    def key(self, ref: GradeRef) -> str:
        key = f"rmr:grade:{self.versions[ref.task]}:{ref.task.value}:{ref.digest.hex()}"
        if ref.task is CoverTask.RELEVANCE:
            key += ":" + hashlib.blake2b(ref.query.encode("utf-8"), digest_size=16).hexdigest()
        return key

    def lookup(self, refs: Sequence[GradeRef]) -> dict[int, int]:
        """Index in `refs` -> grade, for the refs the store holds a valid grade for; one round trip."""
        values = self.store.get_many([self.key(ref) for ref in refs])
        if values is None:
            for ref in refs:
                self.counts["unavailable", ref.task.value] += 1
            return {}
        found: dict[int, int] = {}
        for index, (ref, value) in enumerate(zip(refs, values)):
            grade = GRADE_VALUES.get(value) if value is not None else None
            result = "hits" if grade is not None else "misses" if value is None else "invalid"
            self.counts[result, ref.task.value] += 1
            if grade is not None:
                found[index] = grade
        return found

    def save(self, grades: Sequence[tuple[GradeRef, int]]) -> bool:
        """Write valid grades back; one round trip. False when the store did not take them."""
        items = [(self.key(ref), str(grade).encode(), self.ttl[ref.task]) for ref, grade in grades
                 if grade in GRADE_VALUES.values()]
        return not items or self.store.set_many(items)
