"""The post-ranker's steps without Triton: features in, soft-token rows and placeholders out, refusals by field."""

import json
from pathlib import Path

import numpy as np
import pytest

from build.tiny_checkpoints import ensure_tiny_checkpoints
from clients.samples import SAMPLE_USER, with_features
from ensemble.arrays import Arrays
from ensemble.bls.caller import Slot
from ensemble.config import PipelineConfig
from ensemble.errors import RequestError
from ensemble.postrank.features import Domain, encoder_inputs
from ensemble.postrank.prompt import USER_ROW
from ensemble.postrank.request import parse_judge_request
from ensemble.postrank.runner import PostRanking
from ensemble.tensors import TORCH_LLM_SLOT
from ensemble.tokenizer import load_tokenizer

CACHE = Path(__file__).resolve().parents[2] / ".cache"


@pytest.fixture(scope="module")
def tiny():
    return ensure_tiny_checkpoints(CACHE / "checkpoints")


class Recorder:
    """The engine caller's place: keeps what would reach the slot, answers the identity permutation."""

    def __init__(self, tokenizer) -> None:
        self.sent: list[Arrays] = []
        self.tokenizer = tokenizer

    async def generate(self, model, batches):
        self.sent += batches
        out = []
        for batch in batches:
            n = int(bytes(batch["answer_constraint"].reshape(-1)[0]).decode().partition(":")[2] or 0)
            text = f"<answer>[{','.join(str(i) for i in range(1, n + 1))}]</answer>" if n else "<answer>B</answer>"
            ids = np.array([[self.tokenizer.encode(text, add_special_tokens=False)]], dtype=np.int32)
            out.append({"output_ids": ids, "sequence_length": np.array([[ids.shape[-1]]], dtype=np.int32)})
        return out


@pytest.fixture(scope="module")
def ranking(tiny):
    tokenizer = load_tokenizer(str(tiny.reranker))
    config = PipelineConfig.load(overrides={"postrank": {"checkpoint": str(tiny.postrank)}})
    recorder = Recorder(tokenizer)
    return PostRanking(config, recorder, Slot("reranker_llm", TORCH_LLM_SLOT), tokenizer), recorder


def request_row(body: dict) -> Arrays:
    return {"request": np.array([json.dumps(body).encode()], dtype=np.object_)}


def items(n=20):
    return [{"id": f"doc-{i}", "features": c["features"]}
            for i, c in enumerate(with_features([{"title": f"title {i}"} for i in range(n)], seed=7))]


def test_each_item_is_one_soft_token_past_the_vocabulary_and_its_row_is_the_encoders(ranking):
    post, _ = ranking
    _, tensors = post.parse(request_row({"query": "q", "user": SAMPLE_USER, "candidates": items(5)}))
    ids, table = tensors["input_ids"][0], tensors["prompt_embedding_table"][0]
    vocab = post.pre.soft.vocab_size
    soft = ids[ids >= vocab] - vocab
    assert soft.tolist() == [USER_ROW, 1, 2, 3, 4, 5]  # the user, then the items in request order
    assert table.shape == (6, post.pre.soft.hidden_size) and table.dtype == np.float16
    assert int(tensors["prompt_vocab_size"][0][0]) == 6 and int(tensors["lora_task_id"][0][0]) == 1
    extra = tensors["prompt_table_extra_ids"][0]
    assert (extra[ids < vocab] == 0).all() and (extra[ids >= vocab] >= 1).all()  # KV reuse keys the rows


def test_changing_one_items_numeric_feature_changes_that_items_row_reaching_the_engine_alone(ranking):
    post, recorder = ranking
    before = items(5)
    after = json.loads(json.dumps(before))
    # the same bucket ([0.1, 0.2)): only the exact value moves, which a bucketed or rounded text rendering loses
    before[2]["features"]["click_through_rate"], after[2]["features"]["click_through_rate"] = 0.11, 0.17
    import asyncio

    for body in (before, after):
        request, tensors = post.parse(request_row({"query": "q", "user": SAMPLE_USER, "candidates": body}))
        asyncio.run(post.post_rank([(request, tensors)]))
    old, new = (sent["prompt_embedding_table"][0].astype(np.float32) for sent in recorder.sent[-2:])
    changed = [row for row in range(len(old)) if not np.array_equal(old[row], new[row])]
    assert changed == [3]  # candidate 2 is row 3 (row 0 is the user)
    assert (recorder.sent[-1]["prompt_table_extra_ids"] != recorder.sent[-2]["prompt_table_extra_ids"]).sum() == 1


def test_the_answer_maps_back_to_the_backends_ids(ranking):
    post, _ = ranking
    request, tensors = post.parse(request_row({"query": "q", "candidates": items(4)}))
    import asyncio

    [answer] = asyncio.run(post.post_rank([(request, tensors)]))
    assert answer.ranked_ids == ["doc-0", "doc-1", "doc-2", "doc-3"] and answer.outcome.valid


def test_the_judge_shows_each_list_by_the_candidates_rows(ranking):
    post, _ = ranking
    body = {"query": "q", "candidates": items(3), "list_a": ["doc-0", "doc-1", "doc-2"], "list_b": ["doc-2", "doc-0"]}
    _, tensors = post.parse_judge(request_row(body))
    ids = tensors["input_ids"][0]
    vocab = post.pre.soft.vocab_size
    assert (ids[ids >= vocab] - vocab).tolist() == [USER_ROW, 1, 2, 3, 3, 1]
    assert bytes(tensors["answer_constraint"][0][0]) == b"choice"


@pytest.mark.parametrize(("features", "field", "says"), [
    ({"colour": "red"}, "candidates[0].features.colour", "not in the feature schema"),
    ({"likes": -1}, "candidates[0].features.likes", "within [0, 1e+09]"),
    ({"likes": "many"}, "candidates[0].features.likes", "finite number"),
    ({"format": "podcast"}, "candidates[0].features.format", "vocabulary"),
    ({"title": "x" * 600}, "candidates[0].features.title", "at most 512 characters"),
    ({"age_band": "25-34"}, "candidates[0].features.age_band", "is a user feature, not a item feature"),
])
def test_bad_features_are_refused_naming_the_candidate_and_feature(ranking, features, field, says):
    post, _ = ranking
    with pytest.raises(RequestError) as refused:
        post.parse(request_row({"query": "q", "candidates": [{"id": "a", "features": features}]}))
    assert refused.value.field == field and says in str(refused.value)


def test_absent_features_take_their_absent_row_and_values_keep_their_precision(ranking):
    post, _ = ranking
    schema = post.pre.soft.ranker.schema
    inputs = encoder_inputs(schema, Domain.ITEM, [("c", {}), ("c", {"click_through_rate": 0.5})])
    offset = schema.offsets["click_through_rate"]
    assert inputs.indices[0, 0, 0] == offset and inputs.values[0, 0] == 0.0
    assert inputs.indices[1, 0, 0] == offset + 1 + 5 and inputs.values[1, 0] == pytest.approx(0.0)  # above every bucket


def test_judge_lists_must_name_candidates_once():
    limits = PipelineConfig.load().limits
    base = {"query": "q", "candidates": [{"id": "a"}, {"id": "b"}], "list_a": ["a", "b"]}
    with pytest.raises(RequestError, match=r"list_b\[1\] must be the id of one of the candidates"):
        parse_judge_request(json.dumps(base | {"list_b": ["a", "c"]}), limits)
    with pytest.raises(RequestError, match="list_b must not repeat an id"):
        parse_judge_request(json.dumps(base | {"list_b": ["a", "a"]}), limits)


@pytest.mark.parametrize(("change", "says"), [
    ({"kind": "numeric", "range": [0, 1], "buckets": [0.5, 2]}, "buckets inside its range"),
    ({"kind": "numeric", "range": [1, 0]}, "low < high"),
    ({"kind": "categorical", "vocabulary": ["a", "a"]}, "vocabulary of distinct values"),
    ({"kind": "colour"}, "kind"),
])
def test_a_feature_schema_that_cannot_be_read_fails_at_load_naming_the_file_and_field(tiny, tmp_path, change, says):
    import shutil

    from ensemble.config import ConfigError
    from ensemble.postrank.checkpoint import PostRanker

    folder = tmp_path / "pr"
    shutil.copytree(tiny.postrank, folder)
    schema = json.loads((folder / "features.json").read_text())
    schema["features"][0] = {"name": "x", "domain": "item"} | change
    (folder / "features.json").write_text(json.dumps(schema))
    with pytest.raises(ConfigError, match=r"features.json: field features\.0") as refused:
        PostRanker.load(folder, hidden_size=64)
    assert says in str(refused.value)
