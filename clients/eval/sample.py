"""A labelled sample the project makes itself (nothing to download): re-rank queries of the three query types
with covers, and labelled covers for both tasks. Seeded, so every run makes the same files.

Each candidate has a hidden usefulness; the label ranks by it. Titles repeat the query's words as often as the
candidate is useful and engagement follows it loosely, so a ranker that reads the signals beats the input and
random orders, as a real labelled set would let it. Cover quality is drawn (blur and watermark lower it);
cover relevance follows the candidate's usefulness.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from clients.eval.labelled import QUERY_TYPES
from clients.samples import make_cover

_QUERIES = {
    "Complex Query": ["北京三日游怎么安排最省钱", "how to plan a budget week in Shanghai with kids",
                      "故宫和长城一天能去完吗", "best route from airport to hotel at night"],
    "Broad-needs Query": ["北京旅游攻略", "上海美食推荐", "Beijing travel guide", "hotel reviews"],
    "Simple Query": ["故宫门票", "weather today", "长城开放时间", "metro map"],
}
_FILLER = "推荐 体验 评测 价格 guide tips review local 路线 交通".split()


def make_eval_set(folder: Path, *, per_type: int = 24, candidates: tuple[int, int] = (6, 10), seed: int = 7
                  ) -> tuple[Path, Path]:
    """(rerank.jsonl, covers.jsonl) under `folder`, covers in folder/covers/."""
    rng = random.Random(seed)
    (folder / "covers").mkdir(parents=True, exist_ok=True)
    queries, covers = [], []
    for kind in QUERY_TYPES:
        for n in range(per_type):
            query = f"{rng.choice(_QUERIES[kind])} {n}"
            words = query.split()
            items = []
            for i in range(rng.randint(*candidates)):
                useful = rng.random()
                doc = f"{kind.split()[0].lower()}{n}-d{i}"
                title = " ".join([*(words * round(3 * useful)), *rng.sample(_FILLER, 2)])
                blur, watermark = rng.random() < 0.3, rng.random() < 0.3
                image = f"covers/{doc}.jpg"
                (folder / image).write_bytes(make_cover({"colour": [rng.randrange(256) for _ in range(3)],
                                                         "label": doc, "blur": blur, "watermark": watermark}))
                items.append(({"id": doc, "title": title, "content": f"{title} {' '.join(rng.sample(_FILLER, 4))}",
                               "publish_time": f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T08:00:00Z",
                               "click_through_rate": round(min(0.3, max(0.0, 0.2 * useful + rng.gauss(0, 0.03))), 4),
                               "completion_rate": round(min(1.0, max(0.0, useful + rng.gauss(0, 0.2))), 4),
                               "cover_path": image}, useful))
                if i < 2:  # a sample of the covers is labelled, as a rater's budget allows
                    covers.append({"image": image, "query": query, "task": "relevance",
                                   "grade": min(4, 1 + int(useful * 4))})
                    covers.append({"image": image, "query": "", "task": "quality",
                                   "grade": max(1, 4 - blur - 2 * watermark)})
            label = [c["id"] for c, useful in sorted(items, key=lambda pair: -pair[1])]
            queries.append({"query": query, "query_type": kind, "session": [], "candidates": [c for c, _ in items],
                            "label": label})
    rerank, cover = folder / "rerank.jsonl", folder / "covers.jsonl"
    rerank.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries), encoding="utf-8")
    cover.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in covers), encoding="utf-8")
    return rerank, cover
