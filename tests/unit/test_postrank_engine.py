"""The PyTorch text slot with soft tokens and LoRA adapters, on the tiny checkpoints: what the post-ranker relies on
in the engine (tests/unit/test_postrank.py has the steps)."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from build.tiny_checkpoints import ensure_tiny_checkpoints
from engines.generation import GenerationRequest, request_from_arrays
from engines.torch_engine import TorchEngine
from ensemble.config import ConfigError
from ensemble.constraint import AnswerConstraint
from ensemble.errors import RequestError
from ensemble.postrank.checkpoint import ADAPTER_CONFIG, ADAPTER_WEIGHTS, ENCODER_WEIGHTS, PostRanker

CACHE = Path(__file__).resolve().parents[2] / ".cache"
PROMPT = (151644, 872, 198, 9707, 11, 1246, 525, 498, 30, 151645, 198, 151644, 77091, 198)


@pytest.fixture(scope="module")
def tiny():
    return ensure_tiny_checkpoints(CACHE / "checkpoints")


def copy_adapter(tiny, tmp_path, name, change):
    folder = tmp_path / name
    shutil.copytree(tiny.postrank, folder)
    weights = load_file(str(folder / ADAPTER_WEIGHTS))
    change(folder, weights)
    save_file(weights, str(folder / ADAPTER_WEIGHTS))
    return folder


@pytest.fixture(scope="module")
def engines(tiny, tmp_path_factory):
    def zero_b(folder, weights):
        for key in weights:
            if "lora_B" in key:
                weights[key] = np.zeros_like(weights[key])

    zero = copy_adapter(tiny, tmp_path_factory.mktemp("a"), "zero-b", zero_b)
    plain = TorchEngine(str(tiny.reranker), vision=False, device="cpu")
    adapted = TorchEngine(str(tiny.reranker), vision=False, device="cpu", adapters={1: str(tiny.postrank), 2: str(zero)})
    return plain, adapted


def req(**changes) -> GenerationRequest:
    return dataclasses.replace(GenerationRequest(PROMPT, 12, -1, 151643), **changes)


def test_an_adapter_with_zero_b_matrices_gives_exactly_the_base_models_ids(engines):
    plain, adapted = engines
    [base] = plain.generate([req()])
    [zero] = adapted.generate([req(lora_task_id=2)])
    assert zero.output_ids == base.output_ids


def test_one_batch_mixes_rows_with_and_without_the_adapter_and_base_rows_are_unchanged(engines):
    plain, adapted = engines
    [base] = plain.generate([req()])
    [alone] = adapted.generate([req(lora_task_id=1)])
    assert alone.output_ids != base.output_ids  # the random adapter changes what the model writes
    mixed = adapted.generate([req(lora_task_id=1), req(), req(lora_task_id=2)])
    assert [g.output_ids for g in mixed] == [alone.output_ids, base.output_ids, base.output_ids]
    assert [g.output_ids for g in adapted.generate([req()])] == [base.output_ids]  # base-only: same ids as today


def test_soft_tokens_holding_the_vocabularys_own_rows_give_the_text_prompts_ids(engines):
    plain, adapted = engines
    embeddings = plain.model.get_input_embeddings().weight.detach().numpy()
    rows = [3, 4, 5, 6]  # "Hello, how are": replaced by soft tokens carrying the same embeddings
    table = embeddings[[PROMPT[r] for r in rows]].astype(np.float32)
    ids = list(PROMPT)
    for k, r in enumerate(rows):
        ids[r] = plain.vocab_size + k
    soft = req(input_ids=tuple(ids), prompt_table=table)
    [text] = plain.generate([req()])
    assert [g.output_ids for g in plain.generate([soft, req()])] == [text.output_ids, text.output_ids]
    assert adapted.generate([soft])[0].output_ids == text.output_ids  # no adapter named: the base


def test_a_constrained_post_rank_row_answers_a_permutation(engines, tiny):
    _, adapted = engines
    row = req(lora_task_id=1, max_new_tokens=40, end_id=151645, thinking_budget=0,
              answer_constraint=AnswerConstraint.permutation(5))
    [answer] = adapted.generate([row])
    from ensemble.tokenizer import load_tokenizer

    text = load_tokenizer(str(tiny.reranker)).decode(answer.output_ids)
    order = json.loads(text.removeprefix("<answer>").split("</answer>")[0])
    assert sorted(order) == [1, 2, 3, 4, 5]


def slot(**changes):
    arrays = {"input_ids": np.array([5, 100, 101], dtype=np.int32), "request_output_len": np.array([4], np.int32),
              "prompt_embedding_table": np.zeros((2, 8), np.float16), "prompt_vocab_size": np.array([2], np.int32)}
    return arrays | changes


def test_the_slot_checks_soft_tokens_and_adapters_naming_the_field():
    read = lambda a, **k: request_from_arrays(a, vocab_size=100, max_new_tokens=16, max_answer_ids=50,  # noqa: E731
                                              **({"hidden_size": 8, "adapters": {1: "task1"}} | k))
    assert read(slot()).prompt_table.shape == (2, 8)
    with pytest.raises(RequestError, match=r"input_ids must be token ids in \[0, 100\) or soft tokens in \[100, 102\)"):
        read(slot(input_ids=np.array([5, 102], np.int32)))
    with pytest.raises(RequestError, match="prompt_embedding_table rows must be 8 wide"):
        read(slot(prompt_embedding_table=np.zeros((2, 4), np.float16)))
    with pytest.raises(RequestError, match="prompt_embedding_table is not taken by this slot"):
        read(slot(), hidden_size=0)
    with pytest.raises(RequestError, match=r"prompt_vocab_size must equal the table's rows \(2\)"):
        read(slot(prompt_vocab_size=np.array([3], np.int32)))
    with pytest.raises(RequestError, match="prompt_embedding_table must hold finite numbers"):
        read(slot(prompt_embedding_table=np.full((2, 8), np.inf, np.float16)))
    with pytest.raises(RequestError, match=r"lora_task_id must name an adapter this slot loaded \(\[1\]\)"):
        read(slot(lora_task_id=np.array([7], np.uint64)))


def test_an_adapter_that_does_not_fit_the_base_fails_at_load_naming_the_file_and_field(tiny, tmp_path):
    def other_rank(folder, weights):
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
        (folder / ADAPTER_CONFIG).write_text(json.dumps(config | {"r": 8}))

    def unknown_module(folder, weights):
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
        (folder / ADAPTER_CONFIG).write_text(json.dumps(config | {"target_modules": ["q_proj", "c_attn"]}))

    def wider(folder, weights):
        key = next(k for k in weights if "q_proj.lora_A" in k)
        weights[key] = np.zeros((weights[key].shape[0], 128), np.float32)

    cases = [(other_rank, r"adapter_model.safetensors: field .*_proj.lora_A.weight is \[4, 64\], the base needs "
                          r"\[8, 64\]"),
             (unknown_module, r"adapter_config.json: field target_modules must name modules of the base"),
             (wider, r"adapter_model.safetensors: field .*q_proj.lora_A.weight is \[4, 128\], the base needs \[4, 64\]")]
    for change, message in cases:
        folder = copy_adapter(tiny, tmp_path, change.__name__, change)
        with pytest.raises(ConfigError, match=message):
            TorchEngine(str(tiny.reranker), vision=False, device="cpu", adapters={1: str(folder)})


def test_an_encoder_that_does_not_fit_the_base_fails_at_load_naming_the_file_and_field(tiny, tmp_path):
    folder = tmp_path / "pr"
    shutil.copytree(tiny.postrank, folder)
    with pytest.raises(ConfigError, match=r"encoder.safetensors: field user.out is \[16, 64\], want \[16, 2560\] "
                                          r".*hidden_size=2560"):
        PostRanker.load(folder, hidden_size=2560)
    weights = load_file(str(folder / ENCODER_WEIGHTS))
    del weights["item.key"]
    save_file(weights, str(folder / ENCODER_WEIGHTS))
    with pytest.raises(ConfigError, match="encoder.safetensors: field item.key is missing"):
        PostRanker.load(folder, hidden_size=64)
    (folder / "features.json").write_text(json.dumps({"format": "rmr-postrank-features/1", "feature_dim": 0}))
    with pytest.raises(ConfigError, match="features.json: field feature_dim"):
        PostRanker.load(folder, hidden_size=64)
