"""Capacity model: compute- and bandwidth-bound requests/s of the pipeline on A10 and A800.

Token counts are measured with the real Qwen tokenizer on prompts rendered from the workload file; model shapes
are the published Qwen3-4B and Qwen2.5-VL-7B configs. Per request and model:
- FLOPs = 2 x parameters x (input + output tokens) + attention (4 x layers x hidden_attn x context per token);
- bytes = weights read once per decode step, shared by the batch (weights x output tokens / batch) + the KV
  cache read at every decode step (kv bytes per token x average context x output tokens).
The bounds ignore kernel efficiency: measured throughput should land below them, and how far below is the point.

    python -m bench.capacity [--workload bench/workloads/paper.json] [--batch 32]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from bench.hardware import GPUS, Gpu
from build.model_shape import QWEN3_4B, ModelShape

QWEN25_VL_7B_TEXT = ModelShape(layers=28, hidden=3584, heads=28, kv_heads=4, head_dim=128, intermediate=18944,
                               vocab=152064, tied_embeddings=False)
VISION_7B_PARAMETERS = 0.67e9
VISUAL_TOKENS_PER_COVER = 256
PATCHES_PER_COVER = VISUAL_TOKENS_PER_COVER * 4  # 2x2 patches merge into one visual token


@dataclass(frozen=True)
class Call:
    """One model invocation class within a pipeline request."""

    name: str
    shape: ModelShape
    input_tokens: float
    output_tokens: float
    calls_per_request: float
    extra_flops: float = 0.0

    def flops(self) -> float:
        tokens = self.input_tokens + self.output_tokens
        context = self.input_tokens + self.output_tokens / 2
        attention = 4 * self.shape.layers * self.shape.heads * self.shape.head_dim * context
        return self.calls_per_request * (2 * self.shape.parameters * tokens + attention * tokens + self.extra_flops)

    def bytes(self, batch: int) -> float:
        weights = self.shape.parameters * 2
        context = self.input_tokens + self.output_tokens / 2
        kv = self.shape.kv_bytes_per_token() * context * self.output_tokens
        return self.calls_per_request * (weights * max(self.output_tokens, 1) / batch + kv)


def measure_tokens(workload_path: str) -> dict[str, float]:
    """Average prompt tokens per call class, measured on the workload with the packaged templates."""
    from build.tiny_checkpoints import build_tokenizer
    from clients.workload import Workload
    from ensemble.cover.prompt import build_cover_prompt, cover_template
    from ensemble.planner.prompt import build_plan_prompt, planner_template
    from ensemble.request import CoverTask, parse_cover_request, parse_plan_request, parse_rerank_request
    from ensemble.rerank.prompt import build_rerank_prompt, rerank_template

    tokenizer = build_tokenizer()
    requests = Workload.load(workload_path).requests()
    rerank, plan, covers, candidates, answer, unique_images, images, pairs = [], [], [], [], [], set(), 0, set()
    for r in requests:
        body = parse_rerank_request(json.dumps({"query": r.query, "candidates": r.candidates}, ensure_ascii=False))
        rerank.append(len(build_rerank_prompt(rerank_template(), body, tokenizer, 10 ** 6).input_ids))
        plan.append(len(build_plan_prompt(planner_template(), parse_plan_request(r.query, r.session),
                                          tokenizer, 10 ** 6).input_ids))
        covers.append(len(build_cover_prompt(cover_template(CoverTask.RELEVANCE), parse_cover_request(r.query, "relevance"),
                                             tokenizer, 10 ** 6).input_ids))
        candidates.append(len(r.candidates))
        ids = ",".join(str(i) for i in range(1, len(r.candidates) + 1))
        answer.append(len(tokenizer.encode(f"</thinking><answer>[{ids}]</answer>", add_special_tokens=False)))
        for cover_id in r.cover_ids:
            if cover_id:
                images += 1
                unique_images.add(cover_id)
                pairs.add((r.query, cover_id))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return {"rerank_prompt": mean(rerank), "plan_prompt": mean(plan), "cover_prompt_text": mean(covers),
            "candidates": mean(candidates), "answer": mean(answer), "covers_per_request": images / len(requests),
            "quality_hit_rate": 1 - len(unique_images) / max(images, 1),
            "relevance_hit_rate": 1 - len(pairs) / max(images, 1)}


def pipeline_calls(t: dict[str, float], thinking: int, cache: bool, cover_output: int = 48, *,
                   quality_hit_rate: float | None = None) -> list[Call]:
    """`quality_hit_rate`: the share of quality grades the grade store answers (after index-time grading);
    None: as the cache gives it (`cache`)."""
    covers = t["covers_per_request"]
    quality_hits = quality_hit_rate if quality_hit_rate is not None else t["quality_hit_rate"] if cache else 0.0
    quality_calls = covers * (1 - quality_hits)
    relevance_calls = covers * (1 - t["relevance_hit_rate"] if cache else 1)
    vision = 2 * VISION_7B_PARAMETERS * PATCHES_PER_COVER
    cover_input = t["cover_prompt_text"] + VISUAL_TOKENS_PER_COVER
    return [
        Call("planner (Qwen3-4B)", QWEN3_4B, t["plan_prompt"], 200, 1),
        Call("cover grades (Qwen2.5-VL-7B)", QWEN25_VL_7B_TEXT, cover_input, cover_output,
             quality_calls + relevance_calls, vision),
        Call("re-rank (Qwen3-4B)", QWEN3_4B, t["rerank_prompt"], thinking + t["answer"], 1),
    ]


def listwise_tokens(workload_path: str) -> tuple[float, float]:
    """(prompt tokens of the instructions, tokens per candidate) of the re-rank prompt, fitted on the workload's
    first request from its prompt with one candidate and with all of them."""
    from build.tiny_checkpoints import build_tokenizer
    from clients.workload import Workload
    from ensemble.request import parse_rerank_request
    from ensemble.rerank.prompt import build_rerank_prompt, rerank_template

    tokenizer = build_tokenizer()
    request = Workload.load(workload_path).requests()[0]

    def tokens(k: int) -> int:
        body = parse_rerank_request(json.dumps({"query": request.query, "candidates": request.candidates[:k]},
                                               ensure_ascii=False))
        return len(build_rerank_prompt(rerank_template(), body, tokenizer, 10 ** 6).input_ids)

    k = len(request.candidates)
    per_candidate = (tokens(k) - tokens(1)) / max(k - 1, 1)
    return tokens(1) - per_candidate, per_candidate


def pointwise_tokens(workload_path: str, grader: str = "relevance") -> float:
    """Mean prompt tokens of one pointwise pair (text, no cover) over the workload's candidates."""
    from build.tiny_checkpoints import build_tokenizer
    from clients.workload import Workload
    from ensemble.config import PipelineConfig
    from ensemble.pointwise.prompt import build_pointwise_prompt, pointwise_template
    from ensemble.pointwise.request import Grader, parse_pointwise_request

    tokenizer, template, config = build_tokenizer(), pointwise_template(Grader(grader)), PipelineConfig.load()
    scale = config.pointwise.scale(grader)
    pair = lambda query, candidate: parse_pointwise_request(  # noqa: E731
        query, json.dumps(candidate, ensure_ascii=False), grader, config.limits)
    lengths = [len(build_pointwise_prompt(template, pair(r.query, c), scale, tokenizer, 10 ** 6).input_ids)
               for r in Workload.load(workload_path).requests()[:4] for c in r.candidates]
    return sum(lengths) / len(lengths)


POINTWISE_ANSWER_TOKENS = 8
"""The forced closing, one digit and the answer tags."""


def ranking_modes(base: float, per_candidate: float, n: int, thinking: int, window=None, *,
                  pointwise_prompt: float | None = None, pointwise_thinking: int = 0) -> dict[str, list[Call]]:
    """The re-rank of n candidates by mode, each the calls it makes: one listwise call, sliding windows
    (`window`: the pipeline's rerank_window by default) and, given `pointwise_prompt` (tokens of one pair), n
    pointwise calls alone ("rank") or before the listwise call(s) ("signal")."""
    from ensemble.constraint import AnswerConstraint
    from ensemble.rerank.window import window_count

    if window is None:
        from ensemble.config import PipelineConfig

        window = PipelineConfig.load().rerank_window
    size, calls = min(n, window.size), window_count(n, window.size, window.stride)
    answer = lambda k: AnswerConstraint.permutation(k).answer_tokens + 8  # noqa: E731  (tags)
    one = Call(f"one listwise call of {n}", QWEN3_4B, base + per_candidate * n, thinking + answer(n), 1)
    windows = Call(f"windows {window.size}/{window.stride}: {calls} calls", QWEN3_4B, base + per_candidate * size,
                   thinking + answer(size), calls)
    modes = {"one listwise call": [one], "windows": [windows]}
    if pointwise_prompt is not None:
        pointwise = Call(f"pointwise: {n} calls", QWEN3_4B, pointwise_prompt,
                         pointwise_thinking + POINTWISE_ANSWER_TOKENS, n)
        modes["pointwise rank"] = [pointwise]
        modes["pointwise signal + windows"] = [pointwise, windows]
    return modes


def pipeline_compute_rps(calls: list[Call], gpu: Gpu) -> float:
    """Requests/s when all three models share one GPU's compute."""
    return 1 / sum(call.flops() / (gpu.bf16_tflops * 1e12) for call in calls)


def bounds(calls: list[Call], gpu: Gpu, batch: int) -> list[tuple[str, float, float, float, float]]:
    rows = []
    for call in calls:
        f, b = call.flops(), call.bytes(batch)
        rows.append((call.name, f / 1e12, b / 1e9, gpu.bf16_tflops * 1e12 / f, gpu.bandwidth_gbs * 1e9 / b))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="bench/workloads/paper.json")
    parser.add_argument("--batch", type=int, default=32, help="decode batch that shares each weight read")
    parser.add_argument("--thinking", default="0,256,1024", help="thinking budgets to compare (re-ranker tokens)")
    parser.add_argument("--cover-output", type=int, default=48, help="tokens a cover grade writes (reasoning + answer)")
    args = parser.parse_args(argv)
    t = measure_tokens(args.workload)
    print(f"workload {args.workload} (measured with the Qwen tokenizer): re-rank prompt {t['rerank_prompt']:.0f} tokens "
          f"for {t['candidates']:.1f} candidates, planner prompt {t['plan_prompt']:.0f}, cover prompt "
          f"{t['cover_prompt_text']:.0f} text + {VISUAL_TOKENS_PER_COVER} visual tokens, answer {t['answer']:.0f} "
          f"tokens, {t['covers_per_request']:.1f} covers/request; cache hit rates: quality "
          f"{t['quality_hit_rate']:.0%}, relevance {t['relevance_hit_rate']:.0%}")
    print(f"bounds per GPU at decode batch {args.batch}; 'pipeline' = all three models sharing one GPU\n")
    header = f"{'gpu':5} {'thinking':>8} {'cache':>5}  {'model':30} {'TFLOP/req':>9} {'GB/req':>8} {'compute req/s':>13} {'bandwidth req/s':>15}"
    print(header)
    print("-" * len(header))
    for key in ("A10", "A800"):
        gpu = GPUS[key]
        for thinking in (int(x) for x in args.thinking.split(",")):
            for cache in (False, True):
                rows = bounds(pipeline_calls(t, thinking, cache, args.cover_output), gpu, args.batch)
                for name, tflop, gb, compute, bandwidth in rows:
                    print(f"{key:5} {thinking:>8} {'on' if cache else 'off':>5}  {name:30} {tflop:>9.2f} {gb:>8.2f} "
                          f"{compute:>13.1f} {bandwidth:>15.1f}")
                pipeline_c = 1 / sum(1 / r[3] for r in rows)
                pipeline_b = 1 / sum(1 / r[4] for r in rows)
                print(f"{key:5} {thinking:>8} {'on' if cache else 'off':>5}  {'pipeline':30} {'':>9} {'':>8} "
                      f"{pipeline_c:>13.1f} {pipeline_b:>15.1f}\n")
    from bench.postrank_cost import postrank_call, soft_prompt_tokens
    from ensemble.config import PipelineConfig

    config = PipelineConfig.load()
    top_k, thinking = config.postrank.top_k, int(args.thinking.split(",")[-1])
    post = postrank_call(soft_prompt_tokens(top_k), top_k, f"+ post-rank of top {top_k}")
    print(f"options.post_rank (ensemble/postrank/; bench.postrank_cost has the prompt lengths): thinking {thinking}, "
          f"cache on")
    for key in ("A10", "A800"):
        calls = pipeline_calls(t, thinking, True, args.cover_output)
        for label, chain in (("pipeline", calls), (f"pipeline + post-rank of {top_k}", [*calls, post])):
            rows = bounds(chain, GPUS[key], args.batch)
            print(f"{key:5} {label:36} {sum(r[1] for r in rows):>9.2f} TFLOP/req {1 / sum(1 / r[3] for r in rows):>9.3f} "
                  f"compute req/s {1 / sum(1 / r[4] for r in rows):>9.3f} bandwidth req/s")
    print()
    base, per_candidate = listwise_tokens(args.workload)
    pointwise = pointwise_tokens(args.workload)
    pointwise_thinking = config.generation_for("pointwise").thinking_budget
    print(f"ranking modes: the re-rank of n candidates (listwise prompt {base:.0f} + {per_candidate:.0f} tokens a "
          f"candidate, thinking {thinking}; pointwise prompt {pointwise:.0f} tokens a pair, thinking "
          f"{pointwise_thinking}; one call of n > max_window_candidates is shown for the comparison only)")
    print(f"{'gpu':5} {'n':>4}  {'mode':28} {'calls':>5} {'in tok/req':>10} {'TFLOP/req':>9} {'GB/req':>8} "
          f"{'compute req/s':>13} {'bandwidth req/s':>15}")
    for key in ("A10", "A800"):
        for n in (20, 60, 100):
            modes = ranking_modes(base, per_candidate, n, thinking, config.rerank_window,
                                  pointwise_prompt=pointwise, pointwise_thinking=pointwise_thinking)
            for mode, calls in modes.items():
                rows = bounds(calls, GPUS[key], args.batch)
                count = sum(c.calls_per_request for c in calls)
                tokens = sum(c.calls_per_request * c.input_tokens for c in calls)
                print(f"{key:5} {n:>4}  {mode:28} {count:>5.0f} {tokens:>10.0f} {sum(r[1] for r in rows):>9.2f} "
                      f"{sum(r[2] for r in rows):>8.2f} {1 / sum(1 / r[3] for r in rows):>13.1f} "
                      f"{1 / sum(1 / r[4] for r in rows):>15.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
