"""Pre and post steps with the real Qwen BPE tokenizer (no Triton)."""

import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from build.tiny_checkpoints import build_tokenizer
from ensemble.config import PipelineConfig
from ensemble.errors import RequestError
from ensemble.constraint import AnswerConstraint
from ensemble.cover.steps import CoverPost, CoverPre
from ensemble.planner.steps import PlannerPost, PlannerPre
from ensemble.rerank.steps import RerankPost, RerankPre
from ensemble.words import from_word_list


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def config():
    return PipelineConfig.load()


def b(value) -> np.ndarray:
    return np.array([value.encode() if isinstance(value, str) else value], dtype=np.object_)


def engine_output(tokenizer, text: str) -> dict:
    ids = tokenizer.encode(text, add_special_tokens=False)
    return {"output_ids": np.array([ids + [0, 0]], dtype=np.int32), "sequence_length": np.array([len(ids)], np.int32)}


def check_interface(step, outputs):
    for spec in step.interface.outputs:
        assert spec.name in outputs, spec.name
        assert np.asarray(outputs[spec.name]).dtype == np.dtype(spec.numpy_dtype), spec.name
        assert np.asarray(outputs[spec.name]).ndim == len(spec.dims), spec.name


def test_rerank_pre_builds_engine_tensors(tokenizer, config):
    request = {"query": "北京旅游攻略", "candidates": [{"id": "doc-a", "title": "故宫", "content": "门票预约"},
                                                  {"id": "doc-b", "title": "Great Wall", "content": "Mutianyu"}]}
    step = RerankPre(config, tokenizer)
    out = step({"request": b(json.dumps(request, ensure_ascii=False))})
    check_interface(step, out)
    text = tokenizer.decode(out["input_ids"].tolist())
    assert "[ID] 1\n[Title] 故宫" in text and "[ID] 2\n[Title] Great Wall" in text
    assert out["input_lengths"].tolist() == [len(out["input_ids"])]
    assert out["end_id"].tolist() == [151645] and out["pad_id"].tolist() == [151643]
    assert [tokenizer.decode(w) for w in from_word_list(out["stop_words_list"])] == ["</answer>"]
    assert [v.decode() for v in out["candidate_ids"]] == ["doc-a", "doc-b"]
    budget = config.generation["rerank"].thinking_budget
    assert out["request_output_len"].tolist() == [budget + AnswerConstraint.permutation(2).answer_tokens + 16]
    assert out["thinking_budget"].tolist() == [budget]
    assert out["answer_constraint"].tolist() == [b"permutation:2"]
    assert out["guided_decoding_guide_type"].tolist() == [b"regex"]
    assert re.fullmatch(out["guided_decoding_guide"][0].decode(), "<thinking>x</thinking><answer>[2,1]</answer>")


def test_rerank_pre_honours_requested_length(tokenizer, config):
    request = {"query": "q", "candidates": [{"id": "a", "title": "t"}], "options": {"max_new_tokens": 7}}
    assert RerankPre(config, tokenizer)({"request": b(json.dumps(request))})["request_output_len"].tolist() == [7]


def test_rerank_pre_fits_chinese_contents_without_broken_characters(tokenizer):
    config = PipelineConfig.load(overrides={"generation": {"rerank": {"max_input_len": 900}}})
    request = {"query": "北京", "candidates": [{"id": str(i), "title": "标题", "content": "长城故宫胡同烤鸭" * 80}
                                              for i in range(3)]}
    out = RerankPre(config, tokenizer)({"request": b(json.dumps(request, ensure_ascii=False))})
    assert len(out["input_ids"]) <= 900
    assert "\ufffd" not in tokenizer.decode(out["input_ids"].tolist())


def test_rerank_post_maps_ids_back_and_reports_repairs(tokenizer, config):
    step = RerankPost(config, tokenizer)
    inputs = engine_output(tokenizer, "<thinking>b is better</thinking><answer>[2,2]</answer><|im_end|>")
    request = {"query": "pasta", "candidates": [{"id": "doc-a", "title": "beijing"}, {"id": "doc-b", "title": "x"},
                                                {"id": "doc-c", "title": "pasta recipe"}]}
    inputs |= {"candidate_ids": np.array([b"doc-a", b"doc-b", b"doc-c"], dtype=np.object_),
               "request": b(json.dumps(request))}
    out = step(inputs)
    check_interface(step, out)
    # missing ids follow the fallback ranker: doc-c (matches "pasta") before doc-a
    assert [v.decode() for v in out["ranked_ids"]] == ["doc-b", "doc-c", "doc-a"]
    result = json.loads(out["result"][0])
    assert result["valid"] is False and result["format_reward"] == 0.2
    assert result["repairs"] == [{"kind": "duplicate_id", "ids": [2], "message": "duplicate id 2 dropped"},
                                 {"kind": "missing_ids", "ids": [3, 1], "message": "missing ids [3, 1] appended"}]
    assert result["reasoning"] == "b is better"


def test_cover_pre_and_post(tokenizer, config):
    buffer = io.BytesIO()
    Image.new("RGB", (100, 80)).save(buffer, format="PNG")
    step = CoverPre(config, tokenizer)
    out = step({"query": b("cat food"), "image": b(buffer.getvalue()), "task": b("relevance")})
    check_interface(step, out)
    assert tokenizer.decode(out["input_ids"].tolist()).count("<|image_pad|>") == 1
    with pytest.raises(RequestError, match="^image must be an encoded image"):
        step({"query": b("q"), "image": b(b"nope"), "task": b("quality")})
    with pytest.raises(RequestError, match="^task must be one of"):
        step({"query": b("q"), "image": b(buffer.getvalue()), "task": b("beauty")})
    post = CoverPost(config, tokenizer)
    graded = post(engine_output(tokenizer, "<thinking>sharp</thinking><answer>4</answer>"))
    check_interface(post, graded)
    assert graded["grade"].tolist() == [4] and graded["reasoning"][0] == b"sharp"
    assert post(engine_output(tokenizer, "blah"))["grade"].tolist() == [0]


def test_planner_pre_and_post(tokenizer, config):
    step = PlannerPre(config, tokenizer)
    out = step({"query": b("北京旅游攻略"), "session": np.array([b"Beijing concerts"], dtype=np.object_)})
    check_interface(step, out)
    assert "- Beijing concerts" in tokenizer.decode(out["input_ids"].tolist())
    post = PlannerPost(config, tokenizer)
    answer = ('<answer>{"query_type": "Broad-needs Query", "sub_queries": [{"sub_query": "北京景点", '
              '"intent_dimensions": ["Personal Experience"]}]}</answer>')
    plan = json.loads(post(engine_output(tokenizer, answer) | {"query": b("北京旅游攻略")})["plan"][0])
    assert plan["query_type"] == "Broad-needs Query" and plan["degraded"] is False
    assert plan["sub_queries"] == [{"sub_query": "北京景点", "intent_dimensions": ["Personal Experience"]}]


def test_fast_tokenizer_path_gives_the_same_ids(tokenizer):
    from ensemble.encoding import encode_text as _encode

    text = "<|im_start|>user\n北京旅游攻略 Beijing <answer>[3,1]</answer><|im_end|>\n<|im_start|>assistant\n"
    assert _encode(tokenizer, text) == tokenizer.encode(text, add_special_tokens=False)


def test_rerank_post_valid_answer_needs_no_request_parsing(tokenizer, config):
    step = RerankPost(config, tokenizer)
    inputs = engine_output(tokenizer, "<answer>[2,1]</answer>") | {
        "candidate_ids": np.array([b"x", b"y"], dtype=np.object_), "request": b(b"not even json")}
    assert [v.decode() for v in step(inputs)["ranked_ids"]] == ["y", "x"]


def test_cover_post_reads_every_row_of_a_batch_to_its_own_length(tokenizer, config):
    """As the BLS gets them: [rows, beams, tokens], padded; each row read up to its sequence_length."""
    answers = ["<thinking>sharp</thinking>\n<answer>3</answer>", "<answer>9</answer>",
               "<thinking>cut off at grade 4", "<answer>1</answer>"]
    encoded = [tokenizer.encode(a, add_special_tokens=False) for a in answers]
    width = max(map(len, encoded)) + 5
    pad = tokenizer.encode("<answer>2</answer>", add_special_tokens=False)  # padding that would read as a grade
    ids = np.array([[(e + pad * width)[:width], [0] * width] for e in encoded], dtype=np.int32)
    lengths = np.array([[len(e), 0] for e in encoded], dtype=np.int32)
    assert CoverPost(config, tokenizer).grades({"output_ids": ids, "sequence_length": lengths}) == [3, None, None, 1]


def test_the_reranker_ensemble_takes_the_ablation_options_and_reports_the_requests_budget(tokenizer, config):
    request = {"query": "q", "candidates": [{"id": "a", "title": "t", "click_through_rate": 0.1}, {"id": "b", "title": "u"}],
               "options": {"prompt": "relevance_only", "thinking_budget": 0}}
    pre = RerankPre(config, tokenizer)({"request": b(json.dumps(request))})
    assert pre["thinking_budget"].tolist() == [0]
    assert "[Click-Through Rate]" not in tokenizer.decode(pre["input_ids"].tolist())
    inputs = engine_output(tokenizer, "<thinking></thinking>\n<answer>[2,1]</answer>") | {
        "candidate_ids": np.array([b"a", b"b"], dtype=np.object_), "request": b(json.dumps(request))}
    result = json.loads(RerankPost(config, tokenizer)(inputs)["result"][0])
    assert result["thinking_budget"] == 0 and result["valid"]
