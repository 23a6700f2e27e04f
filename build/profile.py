"""A deployment target's profile (build/profiles/<target>.toml) and the checkpoints it serves."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ensemble.config import merged
from ensemble.names import EngineKind

PROFILES = Path(__file__).resolve().parent / "profiles"
TARGETS = ("cpu", "a10", "a800")


@dataclass(frozen=True)
class Profile:
    name: str
    data: dict[str, Any]

    @classmethod
    def load(cls, target: str) -> Profile:
        """A packaged target (cpu, a10, a800) or the path of a profile file a user copied and edited."""
        path = Path(target) if target.endswith(".toml") else PROFILES / f"{target}.toml"
        if not path.exists():
            raise SystemExit(f"unknown target {target!r}: choose one of {', '.join(TARGETS)} or give a profile .toml")
        with path.open("rb") as fh:
            return cls(path.stem, tomllib.load(fh))

    def get(self, section: str, key: str) -> Any:
        try:
            return self.data[section][key]
        except KeyError:
            raise SystemExit(f"profile {self.name}: [{section}] {key} is missing") from None

    @property
    def engine(self) -> EngineKind:
        return EngineKind(self.get("target", "engine"))

    def merged(self, overrides: dict[str, Any]) -> Profile:
        """This profile with `overrides` merged in, e.g. ``{"serving": {"max_queue_size": 4}}``."""
        return Profile(self.name, merged(self.data, overrides))


@dataclass(frozen=True)
class Checkpoints:
    reranker: str
    vlm: str
    engine_dir: str = ""
    """TensorRT-LLM engine folder of the Qwen3 re-ranker (tensorrtllm targets)."""
    simulate: str = ""
    """Replace both torch engine slots by engines/simulated.py (``empty``, ``valid``, ``error``, ``garbage``,
    ``delay:MS``)."""
    simulate_vlm: str | None = None
    """Simulate only the VLM slot differently (None: same as `simulate`)."""
    postrank: str = ""
    """The post-ranker folder on `reranker` (ensemble/postrank/checkpoint.py); "" = none."""


def resolve_checkpoints(reranker: str, vlm: str, engine_dir: str, cache: str, postrank: str = "") -> Checkpoints:
    """Absolute checkpoint paths; the tiny ones (built on demand) stand in for any not given. The tiny post-ranker
    fits only the tiny re-ranker: with a re-ranker of one's own, a post-ranker is one's own or none."""
    if not reranker or not vlm:
        from build.tiny_checkpoints import ensure_tiny_checkpoints

        tiny = ensure_tiny_checkpoints(Path(cache) / "checkpoints")
        postrank = postrank or ("" if reranker else str(tiny.postrank))
        reranker = reranker or str(tiny.reranker)
        vlm = vlm or str(tiny.vlm)
    for label, path in (("reranker checkpoint", reranker), ("VLM checkpoint", vlm), ("post-ranker", postrank)):
        if path and not Path(path).is_dir():
            raise SystemExit(f"{label} folder not found: {path}")
    return Checkpoints(str(Path(reranker).resolve()), str(Path(vlm).resolve()),
                       str(Path(engine_dir).resolve()) if engine_dir else "",
                       postrank=str(Path(postrank).resolve()) if postrank else "")
