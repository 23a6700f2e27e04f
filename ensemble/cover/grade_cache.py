"""Cover grades worth keeping: quality depends on the image alone, relevance on (query, image).

An in-process LRU with a size bound, keyed by a hash of the image bytes. It lives in the BLS instance, so each
instance has its own; hit and miss counts per task are exported as Triton custom metrics.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict

from ensemble.cover.request import CoverTask


def image_key(image: bytes) -> bytes:
    return hashlib.blake2b(image, digest_size=16).digest()


def grade_key(task: CoverTask, query: str, digest: bytes) -> tuple:
    """Quality: the image alone. Relevance: the query too. `digest` is the image's `image_key`."""
    return (task.value, digest) if task is CoverTask.QUALITY else (task.value, query, digest)


class CoverGradeCache:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._grades: OrderedDict[tuple, int] = OrderedDict()
        self.counts: Counter[tuple[str, str]] = Counter()
        """(hits | misses, task) -> count since start."""

    def get(self, key: tuple) -> int | None:
        grade = self._grades.get(key)
        task = key[0]
        if grade is None:
            self.counts["misses", task] += 1
            return None
        self._grades.move_to_end(key)
        self.counts["hits", task] += 1
        return grade

    def put(self, key: tuple, grade: int) -> None:
        self._grades[key] = grade
        self._grades.move_to_end(key)
        while len(self._grades) > self.max_entries:
            self._grades.popitem(last=False)

    def __len__(self) -> int:
        return len(self._grades)
