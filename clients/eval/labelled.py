"""The labelled files `rmr eval` reads, one JSON object a line.

Re-rank file (Table 1-2)::

    {"query": "...", "query_type": "Complex Query", "session": ["..."],
     "candidates": [{"id": "d1", "title": "...", "content": "...", "publish_time": "...",
                     "click_through_rate": 0.1, "completion_rate": 0.5, "cover_path": "covers/d1.jpg"}, ...],
     "label": ["d3", "d1", ...]}

`label` ranks every candidate id, best first. `cover_path` is relative to the file. `query_type` is one of the
planner's three types (its rows in the table); `session` is optional. The query and candidates are checked with
the re-rank request's own schema (ensemble/rerank/request.py) as the file is read, whatever ranks them: a line
the server would refuse is refused here, naming its line and field (``rerank.jsonl:7: candidates[1].
click_through_rate must be <= 1.0, got 1.5``).

Cover file (Table 3)::

    {"image": "covers/d1.jpg", "query": "...", "task": "relevance", "grade": 3}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ensemble.candidate import REQUEST_FIELDS
from ensemble.cover.request import CoverTask
from ensemble.domain import QueryType
from ensemble.errors import RequestError
from ensemble.rerank.request import parse_rerank_request

QUERY_TYPES = tuple(t.value for t in QueryType)


class LabelledFileError(ValueError):
    """A line of a labelled file that cannot be evaluated: says the file, line and field."""


@dataclass(frozen=True)
class LabelledQuery:
    query: str
    query_type: str
    session: list[str]
    candidates: list[dict[str, Any]]
    """As given, `cover_path` made absolute."""
    label: list[str]

    @property
    def ids(self) -> list[str]:
        return [str(c["id"]) for c in self.candidates]


@dataclass(frozen=True)
class LabelledCover:
    image: Path
    query: str
    task: str
    grade: int


def _lines(path: Path):
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise LabelledFileError(f"{path}:{number}: not JSON ({error.msg})") from None
        if not isinstance(data, dict):
            raise LabelledFileError(f"{path}:{number}: must be a JSON object")
        yield number, data


def read_rerank_set(path: Path) -> list[LabelledQuery]:
    out = []
    for number, data in _lines(path):
        where = f"{path}:{number}"
        query, kind = data.get("query"), data.get("query_type")
        if not isinstance(query, str) or not query.strip():
            raise LabelledFileError(f"{where}: query must be non-empty text")
        if kind not in QUERY_TYPES:
            raise LabelledFileError(f"{where}: query_type must be one of {list(QUERY_TYPES)}, got {kind!r}")
        candidates = data.get("candidates")
        if not isinstance(candidates, list) or not candidates or not all(isinstance(c, dict) for c in candidates):
            raise LabelledFileError(f"{where}: candidates must be a non-empty array of objects")
        session = data.get("session") or []
        if not isinstance(session, list) or not all(isinstance(s, str) for s in session):
            raise LabelledFileError(f"{where}: session must be an array of text")
        try:  # what the server would refuse, refused here: the same schema, the same field names
            parse_rerank_request(json.dumps({"query": query, "candidates": [
                {k: v for k, v in c.items() if k in REQUEST_FIELDS} for c in candidates]}, ensure_ascii=False))
        except RequestError as error:
            raise LabelledFileError(f"{where}: {error}") from None
        ids = [str(c["id"]) for c in candidates]
        label = data.get("label")
        if not isinstance(label, list) or sorted(map(str, label)) != sorted(ids):
            raise LabelledFileError(f"{where}: label must rank every candidate id exactly once")
        resolved = []
        for candidate in candidates:
            candidate = dict(candidate)
            if candidate.get("cover_path"):
                candidate["cover_path"] = str(path.parent / candidate["cover_path"])
            resolved.append(candidate)
        out.append(LabelledQuery(query, kind, list(session), resolved, [str(i) for i in label]))
    if not out:
        raise LabelledFileError(f"{path}: holds no labelled query")
    return out


def read_cover_set(path: Path) -> list[LabelledCover]:
    tasks = [t.value for t in CoverTask]
    out = []
    for number, data in _lines(path):
        where = f"{path}:{number}"
        if data.get("task") not in tasks:
            raise LabelledFileError(f"{where}: task must be one of {tasks}, got {data.get('task')!r}")
        grade = data.get("grade")
        if not isinstance(grade, int) or not 1 <= grade <= 4:
            raise LabelledFileError(f"{where}: grade must be an integer 1-4, got {grade!r}")
        image = path.parent / str(data.get("image", ""))
        if not image.is_file():
            raise LabelledFileError(f"{where}: image {image} is not a file")
        out.append(LabelledCover(image, str(data.get("query") or ""), data["task"], grade))
    if not out:
        raise LabelledFileError(f"{path}: holds no labelled cover")
    return out
