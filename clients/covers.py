"""`rmr covers`: grade the quality of a collection of cover images once, at indexing time, into the grade store.

    rmr covers images/                          # every image file under a folder
    rmr covers --manifest covers.jsonl          # {"id": ..., "path": ...} per line (or .parquet with those columns)

Images are deduplicated by content, sent in batches to `rich_media_reranker` as a covers-only request
(``options: {"cover_tasks": ["quality"], "rerank": false}``), and the server grades what its store lacks and
writes it back: the store key is the server's (its checkpoint and prompt), so the command needs no model of its
own. A rerun, or a run after a kill, skips what is stored (the server answers those from the store). Ends with
a summary; exit status 1 when any image could not be graded for a reason other than being unreadable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clients.connection import add_connection_arguments, connection_from_args
from clients.rerank_client import RerankClient, RerankError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
PLACEHOLDER_QUERY = "cover quality"
"""The quality task does not read the query; the request schema still asks for one."""
COVERS_ONLY = {"cover_tasks": ["quality"], "rerank": False, "evaluate_covers": True}


@dataclass(frozen=True, slots=True)
class Cover:
    id: str
    path: Path


@dataclass
class Summary:
    seen: int = 0
    duplicates: int = 0
    graded: int = 0
    """Graded by the model in this run (and written to the store when `written`)."""
    skipped: int = 0
    """Already stored (or in the server's cache): not graded again."""
    written: int = 0
    no_grade: int = 0
    """The model answered with no usable grade: left unknown, tried again on a rerun."""
    unreadable: dict[str, str] = field(default_factory=dict)
    failed: Counter = field(default_factory=Counter)

    def lines(self) -> list[str]:
        out = [f"covers: {self.seen} listed, {self.duplicates} duplicates of another, {self.graded} graded, "
               f"{self.skipped} already stored, {self.no_grade} without a usable grade, "
               f"{len(self.unreadable)} unreadable, {sum(self.failed.values())} failed"]
        if self.graded and self.written < self.graded:
            out.append(f"warning: the server kept only {self.written} of {self.graded} new grades: it has no grade "
                       "store, or the store was unavailable (see rmr_store_calls_total); rerun when it is back")
        out += [f"  unreadable {cover_id}: {reason}" for cover_id, reason in sorted(self.unreadable.items())[:20]]
        out += [f"  failed ({reason}): {count}" for reason, count in self.failed.items()]
        return out


def list_covers(folder: Path | None, manifest: Path | None) -> Iterator[Cover]:
    if folder is not None:
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                yield Cover(str(path.relative_to(folder)), path)
        return
    if manifest is None:
        return
    if manifest.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(manifest, columns=["id", "path"]).to_pylist()
        rows: Sequence[dict] = table
    else:
        rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        path = Path(row["path"])
        yield Cover(str(row["id"]), path if path.is_absolute() else manifest.parent / path)


def grade_batch(client: RerankClient, batch: list[tuple[str, bytes]], summary: Summary) -> None:
    """One covers-only request; a refused image is set aside with the reason and the rest sent again."""
    if not batch:
        return
    candidates = [{"id": digest, "title": ""} for digest, _ in batch]
    try:
        result = client.rerank(PLACEHOLDER_QUERY, candidates, cover_images=[image for _, image in batch],
                               options=COVERS_ONLY)
    except RerankError as error:
        if error.is_invalid_argument and error.message.startswith("cover_images["):
            index = int(error.message[len("cover_images["):].split("]", 1)[0])
            summary.unreadable[batch[index][0]] = error.message.split(" ", 1)[1][:200]
            grade_batch(client, batch[:index] + batch[index + 1:], summary)
        elif error.is_invalid_argument and error.message.startswith("cover_images must hold") and len(batch) > 1:
            half = len(batch) // 2  # over the request's byte or pixel budget: smaller requests
            grade_batch(client, batch[:half], summary)
            grade_batch(client, batch[half:], summary)
        else:
            summary.failed[error.status.split(".")[-1] or "error"] += len(batch)
        return
    response = result.response
    summary.written += response.get("cover_store", {}).get("written", 0)
    for grade in response["cover_grades"]:
        source = grade["source"]["quality"]
        if source == "model":
            summary.graded += 1
        elif source in ("store", "cache", "request"):
            summary.skipped += 1
        elif source == "model_unusable":
            summary.no_grade += 1
        else:
            summary.failed[source] += 1


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    covers = list(list_covers(args.folder, args.manifest))
    summary = Summary(seen=len(covers))
    seen: dict[str, str] = {}
    batch: list[tuple[str, bytes]] = []
    with RerankClient(connection_from_args(args), timeout_s=args.timeout) as client, \
            tqdm(total=len(covers), unit="cover", disable=args.quiet, file=sys.stderr) as progress:
        for cover in covers:
            try:
                image = cover.path.read_bytes()
            except OSError as error:
                summary.unreadable[cover.id] = f"cannot be read: {error.strerror or error}"
                progress.update(1)
                continue
            digest = hashlib.blake2b(image, digest_size=16).hexdigest()
            if digest in seen:
                summary.duplicates += 1
                progress.update(1)
                continue
            seen[digest] = cover.id
            batch.append((digest, image))
            if len(batch) >= args.batch:
                grade_batch(client, batch, summary)
                progress.update(len(batch))
                batch = []
        grade_batch(client, batch, summary)
        progress.update(len(batch))
    summary.unreadable = {seen.get(k, k): v for k, v in summary.unreadable.items()}
    print("\n".join(summary.lines()))
    return 1 if summary.failed else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("folder", nargs="?", type=Path, help="a folder of cover images (searched recursively)")
    source.add_argument("--manifest", type=Path, help="JSONL or Parquet of id, path (paths relative to the file)")
    parser.add_argument("--batch", type=int, default=16, help="covers per request (at most the server's "
                        "max_candidates; split further when past its byte or pixel budget)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rmr covers", description=__doc__.split("\n\n")[0])
    add_connection_arguments(parser)
    parser.add_argument("--timeout", type=float, default=300.0)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
