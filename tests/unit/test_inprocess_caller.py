"""The BLS's default sub-calls: steps in process, engine slots called with exactly their tensors (no Triton).

The fake slot does what a real engine-slot model does with a request (engines/generation.py parses the rows,
the simulated engine answers as a good model would), so what is checked is the caller's contract with a slot.
"""

import asyncio
import io
import json

import pytest
from PIL import Image

from build.tiny_checkpoints import build_tokenizer
from engines.generation import arrays_from_generation, request_from_arrays
from engines.simulated import SimulatedEngine
from ensemble.config import PipelineConfig
from ensemble.cover.request import CoverTask
from ensemble.errors import RequestError
from ensemble.bls.inprocess import InProcessCaller, Slot
from ensemble.bls.caller import SubCallError
from ensemble.bls.orchestrator import Orchestrator
from ensemble.rerank.prompt import build_rerank_prompt
from ensemble.request import parse_rerank_request
from ensemble.arrays import stack_rows
from ensemble.tensors import SOFT_TOKEN_IN, TORCH_LLM_SLOT, VLM_SLOT


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def jpeg(colour=(10, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


class FakeSlots:
    """Engine slots as their model.py serves them: rows parsed and checked, a batched answer."""

    def __init__(self, tokenizer, fail: str = "", mode: str = "valid", delays: dict | None = None):
        self.engine = SimulatedEngine(mode, tokenizer=tokenizer)
        self.delays = delays or {}
        """model -> seconds each call takes (a slow engine)"""
        self.fail = fail
        self.calls: list[tuple[str, dict]] = []

    async def generate(self, model, batches):
        await asyncio.sleep(self.delays.get(model, 0))
        return [self._one(model, inputs) for inputs in batches]

    def _one(self, model, inputs):
        self.calls.append((model, inputs))
        if model == self.fail:
            return SubCallError(model, "UNAVAILABLE", "queue full")
        batch = len(inputs["input_ids"])
        rows = [{name: array[i] for name, array in inputs.items()} for i in range(batch)]
        requests = [request_from_arrays(r, vocab_size=151936, max_new_tokens=4096, max_answer_ids=50) for r in rows]
        answers = self.engine.generate(requests)
        return stack_rows([arrays_from_generation(a, q.pad_id) for a, q in zip(answers, requests)],
                          TORCH_LLM_SLOT.outputs)


def caller(tokenizer, config=None, fail="", mode="valid", delays=None):
    slots = FakeSlots(tokenizer, fail, mode, delays)
    return InProcessCaller(config or PipelineConfig.load(), slots, cover_slot=Slot("cover_vlm", VLM_SLOT),
                           rerank_slot=Slot("reranker_llm", TORCH_LLM_SLOT), cover_tokenizer=tokenizer,
                           rerank_tokenizer=tokenizer), slots


def candidates(n):
    return [{"id": f"doc-{i}", "title": f"标题 {i} Beijing", "content": f"第{i}条内容 travel notes " * (i + 3),
             "click_through_rate": 0.01 * i} for i in range(n)]


def test_covers_go_to_the_vlm_slot_as_one_batch_of_its_own_tensors(tokenizer):
    c, slots = caller(tokenizer)
    items = [(jpeg(), CoverTask.RELEVANCE), (jpeg((1, 2, 3)), CoverTask.QUALITY), (jpeg(), CoverTask.QUALITY)]
    [grades] = asyncio.run(c.evaluate_covers("北京旅游", [items]))
    assert grades == [2, 2, 2]  # the simulated model answers <answer>2</answer>
    [(model, sent)] = slots.calls
    assert model == "cover_vlm"
    assert set(sent) == {s.name for s in VLM_SLOT.inputs}
    assert sent["input_ids"].shape[0] == 3
    assert [bytes(v[0]) for v in sent["image"]] == [image for image, _ in items]
    # Relevance and quality prompts differ in length: rows are padded, lengths say where each ends.
    lengths = sent["input_lengths"].reshape(-1)
    assert lengths[0] != lengths[1] and sent["input_ids"].shape[1] == lengths.max()
    assert [bytes(v[0]) for v in sent["answer_constraint"]] == [b"grade"] * 3


def test_a_bad_cover_is_the_callers_error_naming_it_and_reaches_no_engine(tokenizer):
    c, slots = caller(tokenizer)
    body = json.dumps({"query": "q", "candidates": candidates(2)}).encode()
    with pytest.raises(RequestError) as failure:
        asyncio.run(Orchestrator(PipelineConfig.load(), c)(body, [jpeg(), b"not an image"]))
    assert failure.value.field == "cover_images[1]"
    assert slots.calls == []


def test_a_cover_prompt_that_cannot_fit_is_a_request_error_of_the_call(tokenizer):
    config = PipelineConfig.load(overrides={"generation": {"cover": {"max_input_len": 8}}})
    c, slots = caller(tokenizer, config)
    [failure] = asyncio.run(c.evaluate_covers("q", [[(jpeg(), CoverTask.QUALITY)]]))
    assert isinstance(failure, SubCallError)
    assert failure.is_request_error and "max_input_len" in failure.message
    assert slots.calls == []


def test_rerank_sends_the_slot_tensors_and_maps_the_answer_to_ids(tokenizer):
    c, slots = caller(tokenizer)
    request = parse_rerank_request(json.dumps({"query": "北京", "candidates": candidates(5)}))
    answer = asyncio.run(c.rerank(request))
    assert answer.ranked_ids == [f"doc-{i}" for i in range(5)]  # the simulated answer is [1,...,5]
    assert answer.outcome.valid and answer.outcome.format_reward == 0.5
    [(model, sent)] = slots.calls
    # the soft-token tensors are the post-rank's alone
    assert model == "reranker_llm" and set(sent) == {s.name for s in TORCH_LLM_SLOT.inputs} - {
        s.name for s in SOFT_TOKEN_IN}
    assert bytes(sent["answer_constraint"].reshape(-1)[0]) == b"permutation:5"


def test_the_prompt_sent_is_the_checkpoint_tokenizers_ids(tokenizer):
    c, slots = caller(tokenizer)
    assert c.rerank_pre.encoder.describe().startswith("tiktoken")  # Qwen's BPE qualifies for the fast path
    request = parse_rerank_request(json.dumps({"query": "北京 travel", "candidates": candidates(12)}))
    asyncio.run(c.rerank(request))
    sent = slots.calls[0][1]["input_ids"].reshape(-1).tolist()
    config = PipelineConfig.load()
    text = build_rerank_prompt(c.rerank_pre.template, request, tokenizer, config.generation["rerank"].max_input_len).text
    assert sent == tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids


def test_orchestrated_request_through_the_engine_slots(tokenizer):
    c, slots = caller(tokenizer)
    body = json.dumps({"query": "北京", "candidates": candidates(4)}).encode()
    images = [jpeg((i, 0, 0)) for i in range(3)] + [b""]
    ranked, response = asyncio.run(Orchestrator(PipelineConfig.load(), c)(body, images))
    assert ranked == [f"doc-{i}" for i in range(4)] and response["valid"] and not response["fallback"]
    assert [g["relevance"] for g in response["cover_grades"]] == [2, 2, 2, None]
    assert [m for m, _ in slots.calls] == ["cover_vlm", "reranker_llm"]
    # The grades reached the prompt: each covered candidate's lines carry them.
    prompt = tokenizer.decode(slots.calls[1][1]["input_ids"].reshape(-1).tolist())
    assert prompt.count("[Cover Image Relevance] 2") == 3


def test_a_failing_llm_slot_gives_the_fallback_ranking(tokenizer):
    c, _ = caller(tokenizer, fail="reranker_llm")
    body = json.dumps({"query": "Beijing", "candidates": candidates(3)}).encode()
    ranked, response = asyncio.run(Orchestrator(PipelineConfig.load(), c)(body, None))
    assert sorted(ranked) == ["doc-0", "doc-1", "doc-2"]
    assert response["fallback"] and "UNAVAILABLE" in response["fallback_reason"]


def test_answers_said_in_prose_are_used_and_each_reading_is_in_the_response(tokenizer):
    """The simulated model says "The final ranking is [4,3,2,1]." and "Rating 3: Relevant"."""
    c, slots = caller(tokenizer, mode="prose")
    body = json.dumps({"query": "北京", "candidates": candidates(4)}).encode()
    orchestrator = Orchestrator(PipelineConfig.load(), c)
    ranked, response = asyncio.run(orchestrator(body, [jpeg(), b"", b"", b""]))
    assert ranked == [f"doc-{i}" for i in (3, 2, 1, 0)] and not response["fallback"] and not response["valid"]
    assert [r["kind"] for r in response["repairs"]] == ["read_bracketed"]
    assert response["cover_grades"][0]["relevance"] == 3
    assert response["cover_reads"] == ["candidates[0] relevance: grade read out of 'Rating 3: Relevant'",
                                       "candidates[0] quality: grade read out of 'Rating 3: Relevant'"]
    # ...and counted for the metrics port (ensemble/outcome_counts.py)
    counts = orchestrator.counts
    assert counts.answers == {("repaired",): 1} and counts.repairs == {("read_bracketed",): 1}
    assert counts.grades[("relevance", "model")] == 1 and counts.grades[("relevance", "no_cover")] == 3
    assert [engine for engine, _ in c.times.take_engine_seconds()] == ["cover_vlm", "reranker_llm"]
    assert c.times.take_engine_seconds() == []


def test_a_failed_reranker_is_counted_as_a_fallback_by_reason(tokenizer):
    c, _ = caller(tokenizer, fail="reranker_llm")
    orchestrator = Orchestrator(PipelineConfig.load(), c)
    _, response = asyncio.run(orchestrator(json.dumps({"query": "q", "candidates": candidates(2)}).encode(), None))
    assert response["fallback"]
    assert orchestrator.counts.answers == {("fallback",): 1}
    assert orchestrator.counts.fallbacks == {("reranker_failed",): 1}


def test_ablation_options_choose_the_prompt_and_the_thinking_budget_per_request(tokenizer):
    c, slots = caller(tokenizer)
    full = parse_rerank_request(json.dumps({"query": "北京", "candidates": candidates(3)}))
    ablated = parse_rerank_request(json.dumps({"query": "北京", "candidates": candidates(3),
                                               "options": {"prompt": "relevance_only", "thinking_budget": 0}}))
    asyncio.run(c.rerank(full))
    answer = asyncio.run(c.rerank(ablated))
    prompts = [tokenizer.decode(inputs["input_ids"].reshape(-1).tolist()) for _, inputs in slots.calls]
    assert "[Click-Through Rate]" in prompts[0] and "[Click-Through Rate]" not in prompts[1]
    assert "[Title]" in prompts[1]
    budgets = [int(inputs["thinking_budget"].reshape(-1)[0]) for _, inputs in slots.calls]
    assert budgets[1] == 0 and budgets[0] == PipelineConfig.load().generation["rerank"].thinking_budget
    assert answer.outcome.thinking_budget == 0 and answer.outcome.valid


def timed(orchestrator, body, images=None):
    import time

    started = time.perf_counter()
    ranked, response = asyncio.run(orchestrator(json.dumps(body).encode(), images))
    return ranked, response, time.perf_counter() - started


MARGIN_S = 0.05
"""What a request may wait past its budget: answering with the fallback ranker and the response's JSON."""


def test_a_rerank_slower_than_the_deadline_answers_with_the_fallback_in_time(tokenizer):
    c, _ = caller(tokenizer, delays={"reranker_llm": 1.0})
    orchestrator = Orchestrator(PipelineConfig.load(), c)
    body = {"query": "北京", "candidates": candidates(3), "options": {"deadline_ms": 300}}
    ranked, response, seconds = timed(orchestrator, body)
    assert seconds < 0.3 + MARGIN_S
    assert response["fallback"] and response["fallback_reason"].startswith("deadline: the re-rank did not answer")
    assert sorted(ranked) == sorted(c["id"] for c in candidates(3))
    assert orchestrator.counts.fallbacks == {("deadline",): 1}


def test_covers_are_skipped_when_the_budget_keeps_no_time_for_them_and_the_rerank_still_runs(tokenizer):
    config = PipelineConfig.load(overrides={"deadlines": {"rerank_reserve_ms": 1000}})
    c, slots = caller(tokenizer, config)
    body = {"query": "北京", "candidates": candidates(2), "options": {"deadline_ms": 800}}
    _, response, _ = timed(Orchestrator(config, c), body, [jpeg(), jpeg((1, 2, 3))])
    assert [g["source"] for g in response["cover_grades"]] == [{"relevance": "deadline", "quality": "deadline"}] * 2
    assert response["valid"] and [m for m, _ in slots.calls] == ["reranker_llm"]


def test_cover_grading_that_runs_long_is_stopped_to_keep_the_reranks_time(tokenizer):
    config = PipelineConfig.load(overrides={"deadlines": {"rerank_reserve_ms": 300}})
    c, _ = caller(tokenizer, config, delays={"cover_vlm": 5.0})
    body = {"query": "北京", "candidates": candidates(2), "options": {"deadline_ms": 600}}
    _, response, seconds = timed(Orchestrator(config, c), body, [jpeg(), b""])
    assert seconds < 0.6 + MARGIN_S
    assert response["cover_grades"][0]["source"] == {"relevance": "deadline", "quality": "deadline"}
    assert response["valid"] and not response["fallback"]


def test_the_transport_timeout_is_the_budget_when_the_request_sets_none(tokenizer):
    c, _ = caller(tokenizer, delays={"reranker_llm": 1.0})
    orchestrator = Orchestrator(PipelineConfig.load(), c)
    body = json.dumps({"query": "q", "candidates": candidates(2)}).encode()
    _, response = asyncio.run(orchestrator(body, None, timeout_s=0.2))
    assert response["fallback_reason"].startswith("deadline")
    _, response = asyncio.run(Orchestrator(PipelineConfig.load(), caller(tokenizer)[0])(body, None))
    assert response["valid"]  # no budget at all: nothing is cut short
