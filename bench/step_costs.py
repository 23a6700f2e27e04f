"""What the BLS computes per request, in this process, without Triton: the breakdown behind
bench/overhead.py's figure (what is left once the hops between models are gone).

The BLS's own code runs (ensemble/orchestrator.py with ensemble/inprocess_caller.py) against engines that
answer at once with well-formed answers, on requests that are all different, so nothing is cached across them
but what every request shares (a query's cover prompts serve both of its tasks' rows).

    python -m bench.step_costs [--requests 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from clients.workload import Workload, WorkloadRequest
from ensemble import names
from ensemble.bls.inprocess import InProcessCaller, Slot
from ensemble.bls.orchestrator import Orchestrator, response_json
from ensemble.config import PipelineConfig
from ensemble.constraint import AnswerConstraint
from ensemble.cover.image import check_image
from ensemble.cover.request import CoverTask
from ensemble.encoding import PromptEncoder
from ensemble.rerank.request import RerankRequest, check_rerank_limits, parse_rerank_request
from ensemble.tensors import TORCH_LLM_SLOT, VLM_SLOT

ROOT = Path(__file__).resolve().parents[1]


class InstantEngines:
    """Engine slots that cost nothing: the same well-formed answer for every row."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def _answer(self, text: str, rows: int) -> dict[str, np.ndarray]:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return {"output_ids": np.array([[ids]] * rows, dtype=np.int32),
                "sequence_length": np.array([[len(ids)]] * rows, dtype=np.int32)}

    async def generate(self, model: str, batches: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        return [self._one(model, inputs) for inputs in batches]

    def _one(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(inputs["input_ids"])
        if model == names.VLM_ENGINE:
            return self._answer("<thinking>the cover is clear</thinking>\n<answer>3</answer>", rows)
        n = AnswerConstraint.parse(bytes(inputs["answer_constraint"].reshape(-1)[0]).decode()).n
        return self._answer("<thinking>" + "weigh relevance. " * 30 + "</thinking>\n<answer>[" +
                            ",".join(map(str, range(n, 0, -1))) + "]</answer>", rows)


def step_costs(pool: list[WorkloadRequest], tokenizer, config: PipelineConfig) -> list[tuple[str, float, str]]:
    """(piece, median ms per request, what it covers), each piece run once per request of `pool`."""
    engines = InstantEngines(tokenizer)
    caller = InProcessCaller(config, engines, cover_slot=Slot(names.VLM_ENGINE, VLM_SLOT),
                             rerank_slot=Slot(names.LLM_ENGINE, TORCH_LLM_SLOT), cover_tokenizer=tokenizer,
                             rerank_tokenizer=tokenizer)
    config_no_cache = PipelineConfig.load(overrides={"cover_cache": {"enabled": False}})
    orchestrator = Orchestrator(config_no_cache, caller)
    bodies = [json.dumps({"query": r.query, "candidates": r.candidates}, ensure_ascii=False).encode() for r in pool]
    requests = [parse_rerank_request(b) for b in bodies]
    encoders = {"exact": caller.rerank_pre.encoder, "tokenizers": PromptEncoder(tokenizer, fast_bpe=False)}

    loop = asyncio.new_event_loop()  # one loop, as in the BLS: asyncio.run() would time a loop's start too

    def run(coroutine) -> None:
        loop.run_until_complete(coroutine)

    def parse(i: int) -> None:
        request = parse_rerank_request(bodies[i])
        check_rerank_limits(request, config.limits)
        for image in pool[i].covers:
            if image:
                check_image(image, config.limits)

    def covers(i: int) -> None:
        items = [(image, task) for image in pool[i].covers if image for task in CoverTask]
        run(caller.evaluate_covers(pool[i].query, [items]))

    graded_requests = [r.model_copy(update={"candidates": tuple(
        c.model_copy(update={"cover_relevance": 3, "cover_quality": 3}) for c in r.candidates)}) for r in requests]

    def graded(i: int) -> RerankRequest:
        return graded_requests[i]

    def exact(i: int) -> None:
        caller.rerank_pre.encoder = encoders["exact"]

    def tokenizers(i: int) -> None:
        caller.rerank_pre.encoder = encoders["tokenizers"]

    def idle(i: int) -> None:
        exact(i)
        time.sleep(0.005)

    def whole(i: int) -> None:
        run(orchestrator(bodies[i], pool[i].covers))

    none = lambda i: None  # noqa: E731
    # (piece, untimed set-up, timed run, what it covers)
    rows: list[tuple[str, Callable[[int], object], Callable[[int], object], str]] = [
        ("parse request, check covers", none, parse, "pydantic schema, limits, image headers"),
        ("covers: pre + post", none, covers, "cover prompts (one per task and query), rows stacked, grades read"),
        ("re-rank: pre + post", exact, lambda i: run(caller.rerank(graded(i))),
         f"render, tokenize with {encoders['exact'].describe().split(' (')[0]}, read the permutation"),
        ("  same, tokenizers library", tokenizers, lambda i: run(caller.rerank(graded(i))),
         "what tokenizing with the checkpoint's tokenizer would cost"),
        ("  same, after 5 ms idle", idle, lambda i: run(caller.rerank(graded(i))),
         "as in the BLS, where it follows a wait for an engine: a VM's idle CPU comes back slower"),
        ("response JSON", none, lambda i: response_json({"ranked_ids": [c["id"] for c in pool[i].candidates],
                                                         "reasoning": "x" * 400}), "the BLS's answer"),
        ("whole orchestrator call", exact, whole, "parse, covers, re-rank, response"),
    ]
    out = []
    for name, setup, timed, what in rows:
        times = []
        for i in range(len(pool)):
            setup(i)
            started = time.perf_counter()
            timed(i)
            times.append(time.perf_counter() - started)
        out.append((name, statistics.median(times) * 1000, what))
    loop.close()
    return out


def print_costs(costs: list[tuple[str, float, str]]) -> None:
    print(f"  {'piece':30} {'ms':>6}  what")
    for name, ms, what in costs:
        print(f"  {name:30} {ms:6.2f}  {what}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--workload", default=str(ROOT / "bench/workloads/overhead.json"))
    parser.add_argument("--cache", default=str(ROOT / ".cache"))
    args = parser.parse_args(argv)
    from build.profile import resolve_checkpoints
    from ensemble.tokenizer import load_tokenizer

    workload = Workload.load(args.workload)
    pool = Workload({**workload.spec, "pool": args.requests}).requests()
    tokenizer = load_tokenizer(str(resolve_checkpoints("", "", "", args.cache).reranker))
    print(f"BLS work per request, in process ({args.requests} different requests, median; engines instant):")
    print_costs(step_costs(pool, tokenizer, PipelineConfig.load()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
