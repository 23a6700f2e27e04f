"""The post-ranker's cost (seed 004): the prompt with features as soft tokens against the same features written as
text, counted by the Qwen tokenizer; the post-rank step's time on this CPU beside the re-rank's, in one run; and the
post-rank call's bounds on A10 and A800 (bench.capacity's model).

    python -m bench.postrank_cost [--items 20] [--repeat 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from bench.capacity import Call, bounds
from bench.hardware import GPUS
from build.model_shape import QWEN3_4B

ROOT = Path(__file__).resolve().parents[1]
LORA_RANK = 8
LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")


def text_item(features: dict) -> str:
    """A candidate's features as text, the way every signal reaches the re-ranker today ("name: value")."""
    return "; ".join(f"{name}: {value}" for name, value in features.items())


def lora_flops_per_token(shape=QWEN3_4B, rank: int = LORA_RANK, modules=LORA_MODULES) -> float:
    """2 x r x (in + out) per targeted module and layer: the adapter's extra work on every token."""
    from ensemble.postrank.checkpoint import module_shapes

    config = type("C", (), {"hidden_size": shape.hidden, "intermediate_size": shape.intermediate,
                            "num_attention_heads": shape.heads, "num_key_value_heads": shape.kv_heads,
                            "head_dim": shape.head_dim})()
    dims = module_shapes(config)
    return shape.layers * sum(2 * rank * sum(dims[m]) for m in modules)


def postrank_call(prompt_tokens: float, n: int, name: str = "post-rank (Qwen3-4B + LoRA)") -> Call:
    """One post-rank of n items: answer only (the template's thinking budget 0), the adapter on every token."""
    from ensemble.constraint import AnswerConstraint

    output = AnswerConstraint.permutation(n).answer_tokens + 8
    return Call(name, QWEN3_4B, prompt_tokens, output, 1, extra_flops=lora_flops_per_token() * (prompt_tokens + output))


def soft_prompt_tokens(n: int, query: str = "北京 三日游 攻略") -> int:
    """Tokens of the packaged post-rank prompt for n items, built as the pre step builds it (no checkpoint needed: the
    encoder changes the rows, not the count)."""
    import numpy as np

    from build.tiny_checkpoints import VOCAB_SIZE, build_tokenizer
    from ensemble.encoding import PromptEncoder
    from ensemble.postrank import prompt

    tokenizer = build_tokenizer()
    soft = prompt.build_soft_prompt(prompt.load(prompt.POSTRANK), tokenizer, PromptEncoder(tokenizer), query=query,
                                    blocks={"user": [prompt.USER_ROW], "items": list(range(1, n + 1))},
                                    table=np.zeros((n + 1, 1), np.float32), vocab_size=VOCAB_SIZE,
                                    placeholder=prompt.soft_token_id(tokenizer), max_input_len=10 ** 6)
    return len(soft.input_ids)


def _median_ms(work, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--cache", default=str(ROOT / ".cache"))
    parser.add_argument("--batch", type=int, default=32, help="decode batch that shares each weight read")
    args = parser.parse_args(argv)

    from build.tiny_checkpoints import ensure_tiny_checkpoints
    from clients.samples import SAMPLE_USER, load_sample, split_sample, with_features
    from ensemble.config import PipelineConfig
    from ensemble.postrank.request import PostRankRequest
    from ensemble.postrank.steps import PostRankPre
    from ensemble.rerank.request import parse_rerank_request
    from ensemble.rerank.steps import RerankPre
    from ensemble.template import render_chat
    from ensemble.tokenizer import load_tokenizer

    tiny = ensure_tiny_checkpoints(Path(args.cache) / "checkpoints")
    tokenizer = load_tokenizer(str(tiny.reranker))
    config = PipelineConfig.load(overrides={"postrank": {"checkpoint": str(tiny.postrank)}})
    pre = PostRankPre(config, tokenizer)
    candidates, _ = split_sample(load_sample())
    pool = [dict(c, id=f"{c['id']}-{k}") for k in range(args.items // len(candidates) + 1) for c in candidates]
    items = with_features(pool[:args.items], seed=1)
    features = len(items[0]["features"])
    query = "北京 三日游 攻略"
    request = PostRankRequest.model_validate_json(json.dumps(
        {"query": query, "user": SAMPLE_USER, "candidates": [{"id": c["id"], "features": c["features"]} for c in items]},
        ensure_ascii=False))
    soft = pre.for_request(request)
    soft_tokens = len(soft["input_ids"])
    template = pre.template
    text = render_chat(tokenizer, template.system, template.user.format(
        query=query, user=text_item(SAMPLE_USER),
        items="".join(template.parts["item"].format(index=i + 1, item=text_item(c["features"]))
                      for i, c in enumerate(items))))
    text_tokens = len(tokenizer.encode(text, add_special_tokens=False))
    print(f"prompt of {args.items} items x {features} features (+ {len(SAMPLE_USER)} user features), Qwen tokenizer:")
    print(f"{'rendering':34} {'tokens':>7} {'per item':>8}")
    print(f"{'soft tokens (one per item, user)':34} {soft_tokens:>7} {1:>8}")
    print(f"{'the same features as text':34} {text_tokens:>7} {(text_tokens - soft_tokens) / args.items + 1:>8.1f}")
    print(f"soft tokens: {soft_tokens / text_tokens:.0%} of the text prompt's length\n")

    rerank_pre = RerankPre(config, tokenizer)
    rerank_request = parse_rerank_request(json.dumps({"query": query, "candidates": pool[:args.items]},
                                                     ensure_ascii=False))
    rerank_tokens = len(rerank_pre.for_request(rerank_request)["input_ids"])
    print(f"pre step on this CPU, median of {args.repeat}, same {args.items} candidates, one run:")
    print(f"{'step':46} {'ms':>7} {'prompt tokens':>13}")
    print(f"{'post-rank pre (encoder + soft-token prompt)':46} {_median_ms(lambda: pre.for_request(request), args.repeat):>7.2f} "
          f"{soft_tokens:>13}")
    print(f"{'re-rank pre (text prompt of every signal)':46} "
          f"{_median_ms(lambda: rerank_pre.for_request(rerank_request), args.repeat):>7.2f} {rerank_tokens:>13}\n")

    top_k = config.postrank.top_k
    head = PostRankRequest(query=query, user=request.user, candidates=request.candidates[:top_k])
    head_tokens = len(pre.for_request(head)["input_ids"])
    calls = [postrank_call(head_tokens, top_k, f"post-rank of top {top_k}"),
             postrank_call(soft_tokens, args.items, f"post-rank of {args.items}"),
             Call(f"re-rank of {args.items}, thinking 0", QWEN3_4B, rerank_tokens,
                  len(rerank_request.candidates) * 3 + 8, 1)]
    print(f"bounds per GPU at decode batch {args.batch} (bench.capacity's model; LoRA r={LORA_RANK} on "
          f"{', '.join(LORA_MODULES)} adds {lora_flops_per_token() / (2 * QWEN3_4B.parameters):.2%} FLOPs a token)")
    print(f"{'gpu':5} {'call':34} {'in tok':>6} {'TFLOP':>7} {'GB':>6} {'compute req/s':>13} {'bandwidth req/s':>15}")
    for key in ("A10", "A800"):
        for call, (name, tflop, gb, compute, bandwidth) in zip(calls, bounds(calls, GPUS[key], args.batch)):
            print(f"{key:5} {name:34} {call.input_tokens:>6.0f} {tflop:>7.3f} {gb:>6.2f} {compute:>13.1f} "
                  f"{bandwidth:>15.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
