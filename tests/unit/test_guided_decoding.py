"""What the GPU slots are sent to bound an answer, checked with the tools the GPU runs: the output regex compiled
by xgrammar at TensorRT-LLM 1.2's pin on the real Qwen vocabulary, and the LLM-API slot's budget forcing driven
step by step through xgrammar's token masks, as TensorRT-LLM's sampler applies both."""

import json
import re

import pytest
import torch
import xgrammar as xgr

from build.tiny_checkpoints import build_tokenizer
from engines.constraints import LlmApiBudget, RowState, Vocabulary
from engines.generation import GenerationRequest
from engines.stack import XGRAMMAR_VERSION
from engines.trtllm_vlm import quantization_problem, sampling_options
from ensemble.answer import parse_grade, parse_permutation
from ensemble.constraint import AnswerConstraint, AnswerKind
from ensemble.tags import FORCED_CLOSING

GRADE, PERMUTATION, FREE = AnswerConstraint(AnswerKind.GRADE), AnswerConstraint.permutation(5), AnswerConstraint()
GRADE_0_4 = AnswerConstraint.grade((0, 4))
CHOICE = AnswerConstraint.choice()
"""A pointwise grader's scale (config [pointwise])."""


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def compiler(tokenizer):
    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=len(tokenizer))
    return xgr.GrammarCompiler(info), info


def accepts(compiler, regex: str, text: str) -> bool:
    grammar, info = compiler
    matcher = xgr.GrammarMatcher(grammar.compile_regex(regex))
    return matcher.accept_string(text) and matcher.accept_token(info.stop_token_ids[0])


def test_the_tests_use_the_xgrammar_tensorrt_llm_pins():
    from importlib.metadata import version

    assert version("xgrammar") == XGRAMMAR_VERSION


@pytest.mark.parametrize("constraint,budget,text", [
    (PERMUTATION, 16, "<thinking>[2] is closer to the query than [4], so a<b here</thinking>\n<answer>[2,4,1,5,3]</answer>"),
    (PERMUTATION, 16, "<think>short</think><answer>[1,2,3,4,5]</answer>"),
    (PERMUTATION, 0, "<answer>[5,4,3,2,1]</answer>"),
    (GRADE, 8, "<thinking>sharp, on topic" + FORCED_CLOSING + "3</answer>"),  # cut at the budget
    (GRADE, -1, "\n<answer>4</answer>"),
    (GRADE_0_4, 8, "<thinking>unrelated</thinking><answer>0</answer>"),
    (FREE, 4, "<thinking>x</thinking><answer>anything at all</answer>"),
    (CHOICE, 0, "<answer>B</answer>"),
])
def test_what_a_good_model_writes_is_accepted_and_read(compiler, constraint, budget, text):
    regex = constraint.output_regex(budget)
    assert re.fullmatch(regex, text) and accepts(compiler, regex, text)
    if constraint.kind is AnswerKind.GRADE:
        assert parse_grade(text, constraint.scale).grade in (0, 3, 4)
    if constraint.kind is AnswerKind.PERMUTATION:
        assert parse_permutation(text, 5).valid


@pytest.mark.parametrize("constraint,budget,text", [
    (PERMUTATION, 16, "<thinking>see <answer>[1]</answer> quoted</thinking><answer>[1,2]</answer>"),  # '</' inside
    (PERMUTATION, 16, "<answer>[1,2]</answer> and more"),  # nothing after the answer
    (PERMUTATION, 16, "<answer>[]</answer>"),
    (PERMUTATION, 16, "<answer>[1,2,3,4]</answer>"),  # n ids, no fewer
    (PERMUTATION, 16, "<answer>[6,1,2,3,4]</answer>"),  # ids of 1..n only
    (GRADE, 8, "<answer>5</answer>"),
    (GRADE, 8, "<answer>0</answer>"),
    (GRADE_0_4, 8, "<answer>5</answer>"),
    (GRADE, 8, "<thinking>no closing<answer>3</answer>"),
    (GRADE, 0, "<thinking>x</thinking><answer>3</answer>"),  # answer only: no reasoning
    (GRADE, 8, "the grade is 3"),
    (CHOICE, 0, "<answer>C</answer>"),
    (CHOICE, 0, "<answer>AB</answer>"),
])
def test_what_the_readers_would_have_to_repair_cannot_be_written(compiler, constraint, budget, text):
    regex = constraint.output_regex(budget)
    assert not re.fullmatch(regex, text) and not accepts(compiler, regex, text)


def test_the_engine_pre_step_and_the_llm_api_slot_send_the_same_regex():
    request = GenerationRequest((1, 2, 3), 64, 0, 0, thinking_budget=12, answer_constraint=GRADE)
    options = sampling_options(request, ["</answer>"])
    assert options["guided_regex"] == GRADE.output_regex(12)
    assert options["top_k"] == 1 and options["max_tokens"] == 64 and options["stop"] == ["</answer>"]
    assert sampling_options(request, [])["stop"] is None


def decode_with_guide_and_budget(tokenizer, compiler, constraint, budget, seed, max_tokens=80):
    """One request as TensorRT-LLM's sampler serves it: the model's logits (random here: the worst model), the
    budget processor, xgrammar's mask for the regex, then greedy choice."""
    grammar, info = compiler
    matcher = xgr.GrammarMatcher(grammar.compile_regex(constraint.output_regex(budget)))
    budget_state = RowState(Vocabulary.from_tokenizer(tokenizer), budget, AnswerConstraint(), info.stop_token_ids[0])
    processor = LlmApiBudget(budget_state, tokenizer)
    bitmask = xgr.allocate_token_bitmask(1, info.vocab_size)
    generator = torch.Generator().manual_seed(seed)
    prompt = [9707, 11, 1879]
    ids = list(prompt)
    # A model that likes to reason and rarely stops: tag-opening tokens and plain words are favoured.
    favoured = tokenizer.encode("<thinking> the cover shows a bright clear photo of", add_special_tokens=False)
    for _ in range(max_tokens):
        logits = torch.randn(1, 1, info.vocab_size, generator=generator)
        logits[..., favoured] += 6.0
        processor(7, logits, [ids], None, None)
        matcher.fill_next_token_bitmask(bitmask)
        xgr.apply_token_bitmask_inplace(logits[0], bitmask)
        token = int(logits.argmax())
        if token in info.stop_token_ids:
            assert matcher.accept_token(token)
            break
        assert matcher.accept_token(token), "the budget processor forced a token the regex refuses"
        ids.append(token)
    return tokenizer.decode(ids[len(prompt):]), budget_state


@pytest.mark.parametrize("constraint,budget", [(GRADE, 6), (GRADE, 0), (PERMUTATION, 10)])
def test_a_rambling_model_is_cut_at_its_budget_and_still_answers_in_format(tokenizer, compiler, constraint, budget):
    for seed in range(3):
        text, state = decode_with_guide_and_budget(tokenizer, compiler, constraint, budget, seed)
        assert re.fullmatch(constraint.output_regex(budget), text), text
        assert state.thinking_tokens <= budget
        if constraint.kind is AnswerKind.GRADE:
            assert parse_grade(text).grade in (1, 2, 3, 4)
        if constraint.kind is AnswerKind.PERMUTATION:  # n ids of 1..n; repeats are the post step's to repair
            answered = parse_permutation(text, 5).answered
            assert len(answered) == 5 and set(answered) <= {1, 2, 3, 4, 5}
        if budget and state.budget_forced:
            assert FORCED_CLOSING in text


def test_the_budget_processor_leaves_the_answer_to_the_guide(tokenizer):
    vocab = Vocabulary.from_tokenizer(tokenizer)
    with pytest.raises(ValueError, match="regex"):
        LlmApiBudget(RowState(vocab, 4, GRADE, 0), tokenizer)


def test_an_autoawq_vlm_checkpoint_is_refused_with_the_supported_export_named(tmp_path):
    autoawq = tmp_path / "awq"
    autoawq.mkdir()
    (autoawq / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "awq", "bits": 4}}))
    assert "ModelOpt" in quantization_problem(autoawq) and "W4A16_AWQ" in quantization_problem(autoawq)
    modelopt = tmp_path / "modelopt"
    modelopt.mkdir()
    (modelopt / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "awq"}}))
    (modelopt / "hf_quant_config.json").write_text(json.dumps({"quantization": {"quant_algo": "W4A16_AWQ"}}))
    bf16 = tmp_path / "bf16"
    bf16.mkdir()
    (bf16 / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
    assert quantization_problem(modelopt) is None and quantization_problem(bf16) is None

