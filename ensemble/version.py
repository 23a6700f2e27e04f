"""Which checkpoint and prompt wrote a result: stored grades and rankings are keyed by it, so a new checkpoint or
a changed template never reads what the old one wrote."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ensemble.template import PromptTemplate

_SAMPLE_BYTES = 1 << 20
_WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.gguf")
_CONFIGS = ("config.json", "generation_config.json", "adapter_config.json", "features.json")
"""A checkpoint's settings files: a Hugging Face model's, and a post-ranker's adapter config and feature schema."""


def checkpoint_identity(path: str | Path) -> str:
    """A digest of a Hugging Face checkpoint folder (or a post-ranker's): its config files and, per weight file,
    name, size and its first and last MiB. A fine-tuned checkpoint has the same shapes (so the same sizes) but other
    bytes."""
    folder = Path(path)
    digest = hashlib.blake2b(digest_size=16)
    for name in _CONFIGS:
        if (folder / name).is_file():
            digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    for weights in sorted(p for pattern in _WEIGHTS for p in folder.glob(pattern)):
        size = weights.stat().st_size
        digest.update(f"{weights.name}\0{size}\0".encode())
        with weights.open("rb") as fh:
            digest.update(fh.read(_SAMPLE_BYTES))
            fh.seek(max(0, size - _SAMPLE_BYTES))
            digest.update(fh.read(_SAMPLE_BYTES))
    return digest.hexdigest()


def grade_version(checkpoint: str, template: PromptTemplate) -> str:
    """The version of one cover task's grades: the checkpoint's identity and the exact template text."""
    return model_version([checkpoint], [template])


def model_version(checkpoints: list[str], templates: list[PromptTemplate]) -> str:
    """A short digest of checkpoint identities and the exact text of templates."""
    digest = hashlib.blake2b(digest_size=8)
    for text in checkpoints:
        digest.update(text.encode("utf-8") + b"\0")
    for template in templates:
        for text in (template.system, template.user, *(f"{k}={v}" for k, v in sorted(template.parts.items()))):
            digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Versions:
    """What produced a deployment's answers, as every response and every log line of a request says it."""

    reranker_checkpoint: str
    vlm_checkpoint: str
    prompts: str
    """A digest of every template's exact text."""
    profile: str
    model_version: str
    """Every checkpoint and template: the key of stored rankings (rmr:rank:<model_version>:...)."""
    postrank_checkpoint: str = ""
    """The post-ranker's identity; "" without one (and then model_version is what it was before post-rankers)."""

    @classmethod
    def of(cls, reranker: str, vlm: str, templates: list[PromptTemplate], profile: str, postrank: str = "") -> Versions:
        checkpoints = [reranker, vlm] + ([postrank] if postrank else [])
        return cls(reranker, vlm, model_version([], templates), profile, model_version(checkpoints, templates),
                   postrank)

    def to_json_dict(self) -> dict[str, str]:
        return {"model_version": self.model_version, "reranker_checkpoint": self.reranker_checkpoint[:16],
                "vlm_checkpoint": self.vlm_checkpoint[:16], "postrank_checkpoint": self.postrank_checkpoint[:16],
                "prompts": self.prompts, "profile": self.profile}

    @property
    def tag(self) -> str:
        """``[model_version=… reranker=… vlm=… prompts=… profile=…]``: the start of a request's log lines."""
        v = self.to_json_dict()
        return (f"[model_version={v['model_version']} reranker={v['reranker_checkpoint']} vlm={v['vlm_checkpoint']} "
                f"prompts={v['prompts']} profile={v['profile']}]")
