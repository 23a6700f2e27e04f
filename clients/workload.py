"""Synthetic request streams shaped like the paper's workload, from a small JSON description.

Deterministic for a given file (seeded). Texts mix Chinese and English; covers are small generated JPEGs,
a share of them reused across requests (what a cover-grade cache can save).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clients.samples import make_cover

_WORDS_ZH = list("北京上海旅游攻略美食景点住宿交通门票预约路线推荐体验评测价格攻略夜景博物馆公园地铁酒店")
_WORDS_EN = ("travel guide food hotel museum metro ticket route review budget night view park tour local tips "
             "schedule concert weather street market history palace wall lake temple").split()
_QUERIES = ["北京旅游攻略", "Beijing travel guide", "上海美食推荐", "iPhone 15 vs Huawei Mate 60",
            "weather today", "Python tutorial", "故宫门票预约", "budget hotels near Qianmen", "长城一日游",
            "best roast duck in Beijing"]
_DIMENSIONS = ["High Freshness", "Authoritativeness", "Personal Experience"]


@dataclass(frozen=True)
class WorkloadRequest:
    query: str
    session: list[str]
    candidates: list[dict[str, Any]]
    covers: list[bytes]
    """Aligned with `candidates`; b"" = no cover."""
    cover_ids: list[str] = field(default_factory=list)
    """An identity per cover (equal for a shared cover), for cache statistics."""


@dataclass(frozen=True)
class Workload:
    spec: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> Workload:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def requests(self) -> list[WorkloadRequest]:
        s = self.spec
        rng = random.Random(s["seed"])
        shared = [make_cover({"colour": [rng.randrange(256) for _ in range(3)], "label": f"shared {i}"})
                  for i in range(s["shared_covers"])]
        out = []
        for n in range(s["pool"]):
            count = rng.randint(*s["candidates"])
            candidates, covers, cover_ids = [], [], []
            for i in range(count):
                candidate: dict[str, Any] = {
                    "id": f"r{n}-d{i}", "title": _text(rng, rng.randint(*s["title_chars"])),
                    "content": _text(rng, rng.randint(*s["content_chars"])),
                    "intent_dimensions": rng.sample(_DIMENSIONS, rng.randint(1, 2)),
                    "publish_time": f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T08:00:00Z",
                    "click_through_rate": round(rng.random() * 0.2, 4),
                    "completion_rate": round(rng.random(), 4)}
                if rng.random() < s["graded_share"]:
                    candidate["cover_relevance"], candidate["cover_quality"] = rng.randint(1, 4), rng.randint(1, 4)
                if rng.random() < s["cover_share"]:
                    if shared and rng.random() < s["shared_cover_share"]:
                        k = rng.randrange(len(shared))
                        covers.append(shared[k])
                        cover_ids.append(f"shared-{k}")
                    else:
                        covers.append(make_cover({"colour": [rng.randrange(256) for _ in range(3)],
                                                  "label": candidate["id"]}))
                        cover_ids.append(candidate["id"])
                else:
                    covers.append(b"")
                    cover_ids.append("")
                candidates.append(candidate)
            session = [rng.choice(_QUERIES) for _ in range(rng.randint(*s["session_queries"]))]
            out.append(WorkloadRequest(rng.choice(_QUERIES), session, candidates, covers, cover_ids))
        return out


def _text(rng: random.Random, chars: int) -> str:
    parts: list[str] = []
    length = 0
    while length < chars:
        word = rng.choice(_WORDS_ZH) if rng.random() < 0.5 else " " + rng.choice(_WORDS_EN)
        parts.append(word)
        length += len(word)
    return "".join(parts).strip()[:chars]
