"""Bundled sample requests and their generated cover images."""

from __future__ import annotations

import io
import json
from importlib.resources import files
from typing import Any

from PIL import Image, ImageDraw, ImageFilter


def load_sample(name: str = "beijing_travel") -> dict[str, Any]:
    return json.loads((files(__package__) / f"{name}.json").read_text(encoding="utf-8"))


def make_cover(spec: dict[str, Any], size: tuple[int, int] = (320, 200)) -> bytes:
    """A JPEG cover drawn from a sample's ``cover`` spec: colour, label, optional blur and watermark."""
    image = Image.new("RGB", size, tuple(spec.get("colour", (128, 128, 128))))
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle([width // 8, height // 4, width * 7 // 8, height * 3 // 4], outline=(255, 255, 255), width=4)
    draw.text((width // 8 + 12, height // 2 - 6), spec.get("label", ""), fill=(255, 255, 255))
    if spec.get("watermark"):
        for y in range(0, height, 24):
            draw.text((4, y), "WATERMARK " * 6, fill=(235, 235, 235))
    if spec.get("blur"):
        image = image.filter(ImageFilter.GaussianBlur(6))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def split_sample(sample: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """Candidates as the API takes them, and cover bytes by candidate id."""
    candidates, covers = [], {}
    for item in sample["candidates"]:
        item = dict(item)
        spec = item.pop("cover", None)
        if spec is not None:
            covers[item["id"]] = make_cover(spec)
        candidates.append(item)
    return candidates, covers


SAMPLE_USER = {"age_band": "25-34", "activity_days": 18, "interests": "travel photography history food"}
"""A user's features in the tiny post-ranker's schema (build/tiny_postrank.py)."""


def with_features(candidates: list[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """The candidates with ``features`` for the tiny post-ranker's 12 item features: the signals they carry, the
    rest drawn from `seed` (a post-rank request's items, or a re-rank request's for options.post_rank)."""
    import random

    rng = random.Random(seed)
    out = []
    for item in candidates:
        features = {
            "click_through_rate": item.get("click_through_rate", round(rng.uniform(0, 0.3), 4)),
            "completion_rate": item.get("completion_rate", round(rng.uniform(0, 1), 3)),
            "age_hours": round(rng.uniform(0, 2000), 1), "likes": rng.randrange(0, 200000),
            "duration_s": rng.randrange(5, 3600), "cover_quality": item.get("cover_quality") or rng.randrange(1, 5),
            "author_followers": rng.randrange(0, 5_000_000),
            "category": rng.choice(["travel", "food", "news", "education"]),
            "format": rng.choice(["article", "video", "image"]),
            "source_tier": rng.choice(["official", "verified", "creator", "other"]),
            "title": item.get("title", "")[:512], "tags": " ".join(rng.sample(["guide", "history", "tips", "photo",
                                                                             "budget", "family", "night"], 3))}
        out.append({**item, "features": {k: v for k, v in features.items() if v is not None}})
    return out
