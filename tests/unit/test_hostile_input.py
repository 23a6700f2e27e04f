"""Hostile input, class by class: each refused early with a short message naming the field, or served in
bounded memory (the gRPC side is tests/e2e/test_hostile_input.py)."""

import io
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from ensemble.config import ConfigError, PipelineConfig
from ensemble.errors import RequestError
from ensemble.rerank.request import RerankRequest, check_rerank_limits, parse_rerank_request

LIMITS = PipelineConfig.load().limits


def body(candidates=None, **changes) -> str:
    data = {"query": "q", "candidates": candidates or [{"id": "a", "title": "t"}], **changes}
    return json.dumps(data)


def big_jpeg(path, side=6000) -> None:
    """36 M pixels of one colour: a small file whose full decode is 108 MB."""
    Image.new("RGB", (side, side), (200, 40, 40)).save(path, format="JPEG", quality=50)


def test_a_large_image_is_decoded_at_the_models_size_not_in_full(tmp_path):
    """Class 1: peak memory of decoding a 36 M-pixel cover stays far below its full RGB size (108 MB)."""
    path = tmp_path / "big.jpg"
    big_jpeg(path)
    script = textwrap.dedent(f"""
        import resource
        from engines.generation import decoded_image
        data = open({str(path)!r}, "rb").read()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        image = decoded_image(data, max_pixels={LIMITS.max_decoded_pixels})
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(image.width * image.height, (after - before) // 1024)
    """)
    pixels, grown_mb = map(int, subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                               check=True).stdout.split())
    assert pixels <= LIMITS.max_decoded_pixels
    assert grown_mb < 40, f"decoding took {grown_mb} MB"


def test_a_png_too_large_is_resized_to_the_budget():
    buffer = io.BytesIO()
    Image.new("RGB", (3000, 2000), (1, 2, 3)).save(buffer, format="PNG")
    from engines.generation import decoded_image

    image = decoded_image(buffer.getvalue(), max_pixels=600_000)
    assert image.width * image.height <= 600_000 and abs(image.width / image.height - 1.5) < 0.01


def test_a_request_over_its_pixel_budget_is_refused_from_the_headers():
    """Class 1: the covers of one request together, counted once each, before any is decoded."""
    import asyncio

    from ensemble.bls.orchestrator import Orchestrator

    def png(colour) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (100, 100), colour).save(buffer, format="PNG")
        return buffer.getvalue()

    config = PipelineConfig.load(overrides={"limits": {"max_request_pixels": 25_000}})
    orchestrator = Orchestrator(config, caller=None)
    raw = body([{"id": str(i), "title": "t"} for i in range(3)]).encode()
    with pytest.raises(RequestError, match=r"^cover_images must hold at most 25000 pixels together"):
        asyncio.run(orchestrator(raw, [png((i, 0, 0)) for i in range(3)]))
    same = png((9, 9, 9))  # one cover repeated is one cover's pixels
    images, _ = orchestrator._checked_images(parse_rerank_request(raw), [same, same, same])
    assert len(images) == 3


def test_messages_quote_at_most_a_short_prefix_of_the_input():
    """Class 2: a 20,000-character unknown field comes back in well under 1 KB."""
    raw = json.dumps({"query": "q", "candidates": [{"id": "a", "title": "t"}], "x" * 20_000: 1})
    with pytest.raises(RequestError) as info:
        parse_rerank_request(raw, LIMITS)
    assert str(info.value).endswith("is not a known field, got 1") and len(str(info.value)) < 300
    assert len(str(RequestError("f" * 5000, "r" * 5000, value="v" * 5000))) < 1024


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01",
                                   "1969-12-31T23:59:59Z", "3000-01-01T00:00:00Z", -1, 1e400, True])
def test_extreme_times_are_refused_naming_the_field(value):
    """Class 3: never an OverflowError (INTERNAL); the rule says the range."""
    raw = body([{"id": "a", "title": "t", "publish_time": value}]) if value != 1e400 else (
        '{"query": "q", "candidates": [{"id": "a", "title": "t", "publish_time": 1e400}]}')
    with pytest.raises(RequestError, match=r"^candidates\[0\]\.publish_time must be (an ISO .* up to 3000-01-01|a finite)"):
        parse_rerank_request(raw)


def test_every_accepted_time_formats_in_the_prompt():
    from ensemble.rerank.prompt import format_candidate, rerank_template

    for value, shown in (("2999-12-31T09:59:00-14:00", "2999-12-31 23:59"), ("1970-01-01T14:00:00+14:00",
                                                                              "1970-01-01 00:00")):
        request = parse_rerank_request(body([{"id": "a", "title": "t", "publish_time": value}]))
        assert shown in format_candidate(rerank_template(), 1, request.candidates[0])


@pytest.mark.parametrize("value,year", [(1_700_000_000, 2023), (2e10, 2603), ("3e10", 2920), (" 1700000000 ", 2023)])
def test_numbers_are_unix_seconds_whatever_their_size(value, year):
    """Class 9: no millisecond guessing; a millisecond value is out of range, not a 1970s date."""
    request = parse_rerank_request(body([{"id": "a", "title": "t", "publish_time": value}]))
    assert request.candidates[0].publish_time.year == year


def test_milliseconds_are_refused_not_misread():
    with pytest.raises(RequestError, match="Unix seconds"):
        parse_rerank_request(body([{"id": "a", "title": "t", "publish_time": 1_700_000_000_000}]))


def test_a_body_over_the_byte_limit_is_refused_before_parsing(monkeypatch):
    """Class 4: neither json nor the schema reads it."""
    raw = b'{"query": "q", "candidates": [' + b'{"id": "a", "title": ""},' * 400_000 + b"]}"
    assert len(raw) > LIMITS.max_request_bytes
    monkeypatch.setattr(json, "loads", lambda *a, **k: pytest.fail("parsed"))
    monkeypatch.setattr(RerankRequest, "model_validate_json", classmethod(lambda *a, **k: pytest.fail("parsed")))
    with pytest.raises(RequestError, match=r"^request must be at most 8388608 bytes"):
        parse_rerank_request(raw, LIMITS)


def test_a_large_body_with_too_many_candidates_is_counted_before_validation(monkeypatch):
    """Class 4: the schema never validates 100,000 candidates one by one."""
    raw = body([{"id": str(i), "title": ""} for i in range(100_000)])
    monkeypatch.setattr(RerankRequest, "model_validate_json", classmethod(lambda *a, **k: pytest.fail("validated")))
    with pytest.raises(RequestError, match=r"^candidates must hold at most 200 items, got 100000"):
        parse_rerank_request(raw, LIMITS)


def test_planner_and_cover_sizes_are_checked_before_decoding():
    from ensemble.cover.request import parse_cover_request
    from ensemble.planner.request import parse_plan_request

    with pytest.raises(RequestError, match=r"^session must hold at most 20 queries"):
        parse_plan_request(b"q", [b"x"] * 100_000, LIMITS)
    with pytest.raises(RequestError, match=r"^query must be at most 512 characters"):
        parse_cover_request(b"\xff" * 10_000, b"quality", LIMITS)


def test_rows_of_one_batch_padded_to_the_longest_are_read_to_their_own_ids():
    """Class 5: a [3, 1] batch to `reranker` with different candidate counts; ids are padded with b""."""
    from build.tiny_checkpoints import build_tokenizer
    from ensemble.arrays import stack_rows
    from ensemble.rerank.steps import RerankPost, RerankPre

    tokenizer = build_tokenizer()
    config = PipelineConfig.load()
    pre, post = RerankPre(config, tokenizer), RerankPost(config, tokenizer)
    rows = [{"request": np.array([body([{"id": c, "title": c} for c in ids]).encode()], dtype=np.object_)}
            for ids in (["a"], ["a", "b", "c"], ["x", "y"])]
    batch = stack_rows([pre(r) for r in rows], pre.interface.outputs)
    answer = tokenizer.encode("<answer>[1]</answer>", add_special_tokens=False)
    for index, row in enumerate(rows):
        inputs = {"candidate_ids": batch["candidate_ids"][index], "request": row["request"],
                  "output_ids": np.array([answer], dtype=np.int32), "sequence_length": np.array([len(answer)])}
        ranked = [v.decode() for v in post(inputs)["ranked_ids"]]
        assert sorted(ranked) == sorted(json.loads(row["request"][0])["candidates"][i]["id"]
                                        for i in range(len(ranked)))
        assert len(ranked) == (1, 3, 2)[index]


def test_max_new_tokens_has_one_limit_named_in_the_refusal():
    """Class 7: the request is refused up front with the engine slots' own limit."""
    request = parse_rerank_request(body(options={"max_new_tokens": 20_000}))
    with pytest.raises(RequestError, match=r"^options\.max_new_tokens must be <= 4096 \(limits\.max_new_tokens\)"):
        check_rerank_limits(request, LIMITS)
    with pytest.raises(ConfigError, match="exceeds limits.max_new_tokens"):
        PipelineConfig.load(overrides={"limits": {"max_new_tokens": 100}})


def test_the_benchmarks_worst_requests_are_what_they_claim():
    """bench.resilience's worst valid request passes every limit at its maximum; its worst refused body is
    under the byte limit and refused for its count."""
    from bench.resilience import worst_refused_body, worst_valid_request
    from ensemble.cover.image import check_image

    query, candidates, covers = worst_valid_request(LIMITS)
    request = parse_rerank_request(json.dumps({"query": query, "candidates": candidates}), LIMITS)
    check_rerank_limits(request, LIMITS)
    pixels = {c: check_image(c, LIMITS).width * check_image(c, LIMITS).height for c in covers}
    assert len(pixels) == len(covers)  # distinct covers: none counted once for two
    assert LIMITS.max_request_pixels * 0.99 < sum(pixels.values()) <= LIMITS.max_request_pixels
    assert len(candidates) == LIMITS.max_candidates
    body = worst_refused_body(LIMITS)
    assert LIMITS.max_request_bytes - 100 < len(body) <= LIMITS.max_request_bytes
    with pytest.raises(RequestError, match="^candidates must hold at most"):
        parse_rerank_request(body, LIMITS)
