"""Budget forcing and exact answers, on the real Qwen vocabulary and a tiny random model."""

import random

import pytest

from build.tiny_checkpoints import build_tokenizer, ensure_tiny_checkpoints
from engines.constraints import ConstraintProcessor, RowState, Vocabulary
from ensemble.constraint import AnswerConstraint
from engines.generation import GenerationRequest
from ensemble.answer import parse_grade, parse_permutation
from ensemble.tags import split_answer
from tests.e2e.conftest import CACHE


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def vocab(tokenizer):
    return Vocabulary.from_tokenizer(tokenizer)


def drive(state: RowState, tokenizer, choose, steps=400) -> str:
    """Run the state machine with `choose(allowed)` picking tokens (None = free text)."""
    ids: list[int] = []
    for _ in range(steps):
        allowed, _ = state.allowed()
        token = choose(allowed)
        if token == state.end_id:
            break
        ids.append(token)
        state.advance(token, tokenizer.decode(ids[-6:]))
    return tokenizer.decode(ids)


def test_permutation_is_valid_whatever_the_model_prefers(tokenizer, vocab):
    rng = random.Random(0)
    for n in (1, 2, 9, 10, 23, 50):
        state = RowState(vocab, 5, AnswerConstraint.permutation(n), end_id=151645)
        text = drive(state, tokenizer, lambda allowed: rng.choice(allowed) if allowed else rng.randrange(1000, 2000))
        report = parse_permutation(text, n)
        assert report.valid, (n, text)
        assert state.budget_forced


def test_thinking_never_exceeds_the_budget(tokenizer, vocab):
    for budget in (1, 7, 32):
        state = RowState(vocab, budget, AnswerConstraint.parse("grade"), end_id=151645)
        drive(state, tokenizer, lambda allowed: allowed[0] if allowed else 9707)  # 9707: a plain word token
        assert state.thinking_tokens == budget


def test_budget_zero_is_answer_only(tokenizer, vocab):
    state = RowState(vocab, 0, AnswerConstraint.parse("grade"), end_id=151645)
    text = drive(state, tokenizer, lambda allowed: allowed[-1] if allowed else 9707)
    assert text == "<answer>4</answer>" and state.thinking_tokens == 0
    assert parse_grade(text).grade == 4


def test_model_closing_its_own_thinking_is_not_forced(tokenizer, vocab):
    closing = tokenizer.encode("ok</thinking>", add_special_tokens=False)
    script = iter(closing)
    state = RowState(vocab, 50, AnswerConstraint.parse("grade"), end_id=151645)
    text = drive(state, tokenizer, lambda allowed: next(script, None) if allowed is None else allowed[0])
    assert not state.budget_forced and split_answer(text).answer == "1"


def test_unconstrained_row_only_gets_budget_forcing(tokenizer, vocab):
    state = RowState(vocab, 3, AnswerConstraint.parse(""), end_id=151645)
    text = drive(state, tokenizer, lambda allowed: allowed[0] if allowed else 9707, steps=12)
    assert "</thinking>\n<answer>" in text and state.phase == "free"


def test_processor_masks_each_row_of_a_batch_by_its_own_phase(tokenizer, vocab):
    """The batched processor: row 0 closes its own thinking (the closer split over tokens), row 1 is budget
    forced, row 2 is unconstrained; every row then answers validly, choosing by the masked scores alone."""
    import torch

    closing = tokenizer.encode("so</thinking>", add_special_tokens=False)
    assert len(closing) > 1  # the closer spans tokens, so the processor must read text, not one id
    rows = [RowState(vocab, 50, AnswerConstraint.permutation(3), end_id=151645),
            RowState(vocab, 2, AnswerConstraint.parse("grade"), end_id=151645), None]
    processor = ConstraintProcessor(rows, tokenizer)
    ids = torch.tensor([[11] * 4] * 3)  # any prompt
    script = iter(closing)
    for _ in range(40):
        scores = torch.zeros(3, len(tokenizer))
        scores[:, 9707] = 1.0  # the model's favourite: a plain word, or its own closer on row 0
        scores[:, 151645] = 2.0  # ... and the end token, which constrained rows may not take early
        scores = processor(ids, scores)
        chosen = scores.argmax(-1)
        chosen[0] = next(script, int(chosen[0])) if rows[0].phase == "thinking" and not rows[0].forced else chosen[0]
        chosen[2] = 9707
        ids = torch.cat([ids, chosen[:, None]], dim=1)
    first, second = (tokenizer.decode(row[4:].tolist()) for row in ids[:2])
    assert first.startswith("so</thinking>\n<answer>[") and not rows[0].budget_forced, first
    assert parse_permutation(first, 3).valid and rows[0].phase == "done", first
    assert rows[1].budget_forced and parse_grade(second).grade is not None and rows[1].thinking_tokens == 2, second


def test_bad_constraint_is_refused(vocab):
    with pytest.raises(ValueError):
        RowState(vocab, 1, AnswerConstraint.parse("permutation:x"), end_id=0)


def test_random_tiny_model_answers_validly_under_constraints():
    """100 random requests through the real engine: every permutation valid with no repair."""
    from engines.torch_engine import TorchEngine

    ckpts = ensure_tiny_checkpoints(CACHE / "checkpoints")
    engine = TorchEngine(str(ckpts.reranker), vision=False, device="cpu")
    rng = random.Random(1)
    requests, sizes = [], []
    for _ in range(100):
        n = rng.randint(1, 25)
        prompt = [rng.randrange(1000, 100000) for _ in range(rng.randint(5, 30))]
        budget = rng.choice([0, 4, 9])
        requests.append(GenerationRequest(tuple(prompt), budget + 120, 151645, 151643, (), budget, AnswerConstraint.permutation(n)))
        sizes.append(n)
    results = []
    for start in range(0, 100, 25):
        results += engine.generate(requests[start:start + 25])
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(ckpts.reranker))
    vocab = Vocabulary.from_tokenizer(tokenizer)
    for request, n, result in zip(requests, sizes, results):
        ids = list(result.output_ids)
        text = tokenizer.decode(ids)
        report = parse_permutation(text, n)
        assert report.valid and report.issues == [], text
        # thinking = the generated tokens before the answer opens; never more than the budget
        opening = vocab.open_answer if request.thinking_budget == 0 else vocab.close_thinking_open_answer
        starts = [i for i in range(len(ids)) if tuple(ids[i:i + len(opening)]) == opening]
        assert starts and starts[0] <= request.thinking_budget, text


def test_engine_attention_never_uses_cudnn():
    """cuDNN attention plans each new shape (every decode step on a GPU): the engine runs without it."""
    import torch

    from engines.torch_engine import TorchEngine

    ckpts = ensure_tiny_checkpoints(CACHE / "checkpoints")
    engine = TorchEngine(str(ckpts.reranker), vision=False, device="cpu")
    seen = []
    engine.model.register_forward_pre_hook(lambda *_: seen.append(torch.backends.cuda.cudnn_sdp_enabled()))
    engine.generate([GenerationRequest((1000, 2000, 3000), 3, 151645, 151643)])
    assert seen and not any(seen)
    assert torch.backends.cuda.cudnn_sdp_enabled()  # the process-wide setting is restored afterwards


@pytest.mark.parametrize("wire,digits", [("grade", "1234"), ("grade:0-4", "01234"), ("grade:1-9", "123456789")])
def test_a_grade_answer_is_one_digit_of_its_scale(tokenizer, vocab, wire, digits):
    """A pointwise grader's scale (config [pointwise]) is what the slot lets the model answer, 0 included."""
    state = RowState(vocab, 0, AnswerConstraint.parse(wire), end_id=151645)
    state.advance(state.allowed()[0][0], "")  # the forced <answer>
    while state.forced:
        state.advance(state.forced[0], "")
    allowed, _ = state.allowed()
    assert sorted(tokenizer.decode([t]) for t in allowed) == list(digits)


def test_a_choice_answer_is_one_letter_and_then_the_answer_closes(tokenizer, vocab):
    """The list judge's answer: A or B, nothing else, then ``</answer>`` and the end."""
    state = RowState(vocab, 0, AnswerConstraint.choice(), end_id=151645)
    while state.forced:
        state.advance(state.forced[0], "")
    allowed, end_banned = state.allowed()
    assert sorted(tokenizer.decode([t]) for t in allowed) == ["A", "B"] and end_banned
    state.advance(allowed[1], "")
    closing = []
    while state.forced:
        closing.append(state.forced[0])
        state.advance(state.forced[0], "")
    assert tokenizer.decode(closing) == "</answer>" and state.allowed() == ([151645], False)
