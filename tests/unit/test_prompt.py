import json

import pytest

from ensemble.config import ConfigError
from ensemble.cover.prompt import build_cover_prompt, cover_template
from ensemble.errors import RequestError
from ensemble.planner.prompt import build_plan_prompt, planner_template
from ensemble.request import CoverTask, parse_cover_request, parse_plan_request, parse_rerank_request
from ensemble.rerank.prompt import build_rerank_prompt, rerank_template

LOADERS = {"planner": planner_template, "rerank": rerank_template,
           "cover_relevance": lambda: cover_template(CoverTask.RELEVANCE),
           "cover_quality": lambda: cover_template(CoverTask.QUALITY)}


def rerank_request(contents, query="北京旅游攻略", **extra):
    return parse_rerank_request(json.dumps({
        "query": query,
        "candidates": [{"id": f"doc-{i}", "title": f"标题{i}", "content": text, **extra} for i, text in
                       enumerate(contents)]}))


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_packaged_templates_load(name):
    template = LOADERS[name]()
    assert template.name == name
    assert "<thinking></thinking>" in template.user and "<answer></answer>" in template.user


def test_rerank_prompt_has_paper_fields_and_unknowns(char_tokenizer):
    template = rerank_template()
    prompt = build_rerank_prompt(template, rerank_request(["长城一日游"], click_through_rate=0.125), char_tokenizer,
                                 10_000)
    for label in ("[ID] 1", "[Title] 标题0", "[Content] 长城一日游", "[Intent Dimension] unknown",
                  "[Publish Time] unknown", "[Cover Image Relevance] unknown", "[Cover Image Quality] unknown",
                  "[Click-Through Rate] 12.5%", "[Content Completion Rate] unknown"):
        assert label in prompt.text
    assert prompt.text.startswith("<|im_start|>user\n") and prompt.text.endswith("<|im_start|>assistant\n")
    assert "doc-0" not in prompt.text  # the backend's ids never reach the model
    assert prompt.truncated == ()


def test_rerank_prompt_shares_a_fixed_prefix_across_requests(char_tokenizer):
    template = rerank_template()
    a = build_rerank_prompt(template, rerank_request(["a"], query="q1"), char_tokenizer, 10_000).input_ids
    b = build_rerank_prompt(template, rerank_request(["b", "c"], query="another"), char_tokenizer, 10_000).input_ids
    common = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    instructions_end = len(char_tokenizer.encode("<|im_start|>user\n" + template.user.split("{query}")[0]))
    assert common >= instructions_end


def test_token_budget_truncates_fairly_never_ids(char_tokenizer):
    template = rerank_template()
    contents = ["短" * 10, "长" * 3000, "中" * 800]
    request = rerank_request(contents)
    full = build_rerank_prompt(template, request, char_tokenizer, 100_000)
    limit = len(full.input_ids) - 2500
    prompt = build_rerank_prompt(template, request, char_tokenizer, limit)
    assert len(prompt.input_ids) <= limit
    assert "[Content] " + "短" * 10 + "\n" in prompt.text  # short content untouched
    kept_long = prompt.text.split("[Content] ")[2].split("…")[0]
    kept_mid = prompt.text.split("[Content] ")[3].split("…")[0]
    assert len(kept_long) == len(kept_mid) > 0  # both cut to the same cap
    assert prompt.truncated == (1, 2)
    for i in (1, 2, 3):
        assert f"[ID] {i}\n" in prompt.text
    assert template.user.split("{query}")[0] in prompt.text


def test_budget_cuts_titles_when_contents_are_not_enough(char_tokenizer):
    template = rerank_template()
    request = parse_rerank_request(json.dumps({"query": "q", "candidates": [
        {"id": str(i), "title": "T" * 400, "content": "c" * 50} for i in range(4)]}))
    full = len(build_rerank_prompt(template, request, char_tokenizer, 100_000).input_ids)
    prompt = build_rerank_prompt(template, request, char_tokenizer, full - 4 * 50 - 400)
    assert len(prompt.input_ids) <= full - 600
    assert prompt.truncated == (0, 1, 2, 3)


def test_budget_too_small_for_instructions_is_a_request_error(char_tokenizer):
    with pytest.raises(RequestError, match="max_input_len=50"):
        build_rerank_prompt(rerank_template(), rerank_request(["x"]), char_tokenizer, 50)


def test_planner_prompt_lists_session_and_drops_oldest_to_fit(char_tokenizer):
    template = planner_template()
    request = parse_plan_request("北京旅游攻略", ["Upcoming concerts in Beijing", "Cheap hotels in Beijing"])
    prompt = build_plan_prompt(template, request, char_tokenizer, 10_000)
    assert "- Upcoming concerts in Beijing\n- Cheap hotels in Beijing" in prompt.text
    tight = build_plan_prompt(template, request, char_tokenizer, len(prompt.input_ids) - 10)
    assert tight.dropped_session == 1 and "Upcoming concerts" not in tight.text
    empty = build_plan_prompt(template, parse_plan_request("q"), char_tokenizer, 10_000)
    assert "Session Context:\n(none)" in empty.text


def test_cover_prompts_place_image_after_fixed_instructions(char_tokenizer):
    rel = build_cover_prompt(cover_template(CoverTask.RELEVANCE), parse_cover_request("猫粮", "relevance"),
                             char_tokenizer, 4096)
    assert rel.text.count("<|image_pad|>") == 1
    assert rel.text.index("Rating 4") < rel.text.index("<|vision_start|>") < rel.text.index("User Query: 猫粮")
    quality = build_cover_prompt(cover_template(CoverTask.QUALITY), parse_cover_request("", "quality"),
                                 char_tokenizer, 4096)
    assert "User Query" not in quality.text and quality.text.count("<|image_pad|>") == 1


def test_template_override_by_config(tmp_path, char_tokenizer):
    path = tmp_path / "mine.toml"
    path.write_text('user = "Rank for {query}:\\n{candidates}"\ncandidate = "#{id} {title}"\n'
                    'candidate_separator = "\\n"\nunknown = "?"\ntime_format = "%Y"\nrate_format = "{:.2f}"\n'
                    'truncation_mark = "..."\n')
    template = rerank_template({"rerank": str(path)})
    prompt = build_rerank_prompt(template, rerank_request(["x", "y"], query="q"), char_tokenizer, 1000)
    assert "Rank for q:\n#1 标题0\n#2 标题1" in prompt.text


@pytest.mark.parametrize("content,match", [
    ('user = "no placeholders"\n', "lacks placeholder"),
    ('user = "{query} {candidates} {secret}"\n', "unknown placeholder"),
    ('user = "{query} {candidates}"\n', "must define a string 'candidate'"),
    ('user = "{query} {candidates} {"\n', "not a valid format string"),
    ('user = ', "cannot be read"),
])
def test_bad_template_override_fails_at_load(tmp_path, content, match):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=match):
        rerank_template({"rerank": str(path)})
