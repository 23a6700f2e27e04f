import pytest

from bench.capacity import QWEN25_VL_7B_TEXT, Call, pipeline_calls
from build.model_shape import QWEN3_4B


def test_qwen25_vl_7b_text_parameters():
    assert 7.0e9 < QWEN25_VL_7B_TEXT.parameters < 7.7e9  # 7.6 B text model (the vision tower is extra)


def test_flops_are_two_per_parameter_per_token_plus_attention():
    call = Call("x", QWEN3_4B, 1000, 0, 1)
    dense = 2 * QWEN3_4B.parameters * 1000
    assert dense < call.flops() < dense * 1.2


def test_batch_shares_weight_reads():
    call = Call("x", QWEN3_4B, 100, 100, 1)
    assert call.bytes(32) < call.bytes(1) / 10


def test_cache_and_thinking_move_the_right_terms():
    tokens = {"plan_prompt": 400, "cover_prompt_text": 190, "rerank_prompt": 3900, "answer": 60,
              "covers_per_request": 20, "quality_hit_rate": 0.5, "relevance_hit_rate": 0.0, "candidates": 20}
    off = {c.name: c for c in pipeline_calls(tokens, 0, cache=False)}
    on = {c.name: c for c in pipeline_calls(tokens, 0, cache=True)}
    vlm = "cover grades (Qwen2.5-VL-7B)"
    assert off[vlm].calls_per_request == 40 and on[vlm].calls_per_request == pytest.approx(30)
    longer = {c.name: c for c in pipeline_calls(tokens, 512, cache=False)}
    assert longer["re-rank (Qwen3-4B)"].output_tokens == off["re-rank (Qwen3-4B)"].output_tokens + 512


def test_windows_cost_their_calls_of_one_window_each():
    from bench.capacity import ranking_modes

    modes = ranking_modes(300.0, 180.0, 60, 512)
    [one], [windows] = modes["one listwise call"], modes["windows"]
    assert windows.calls_per_request == 5 and one.calls_per_request == 1
    assert windows.input_tokens == 300 + 180 * 20 and one.input_tokens == 300 + 180 * 60
    # Five windows of 20 read more prompt than one call of 60 (each candidate about twice), and write five answers.
    assert windows.flops() > one.flops()
    single = ranking_modes(300.0, 180.0, 20, 512)
    assert single["one listwise call"][0].flops() == single["windows"][0].flops()


def test_pointwise_costs_n_short_calls_and_the_signal_adds_them_to_the_listwise_calls():
    from bench.capacity import ranking_modes

    modes = ranking_modes(300.0, 180.0, 60, 512, pointwise_prompt=400.0, pointwise_thinking=256)
    [rank] = modes["pointwise rank"]
    assert rank.calls_per_request == 60 and rank.input_tokens == 400 and rank.output_tokens == 256 + 8
    assert [c.calls_per_request for c in modes["pointwise signal + windows"]] == [60, 5]
    # 60 prompts of 400 tokens read more than one of 300 + 180 x 60, and each writes its own reasoning.
    assert rank.flops() > modes["one listwise call"][0].flops()


def test_the_post_rank_call_is_its_soft_token_prompt_and_the_adapter_on_every_token():
    from bench.postrank_cost import lora_flops_per_token, postrank_call, soft_prompt_tokens

    ten, twenty = soft_prompt_tokens(10), soft_prompt_tokens(20)
    # "[i] ", one soft token and a newline, where the features as text take ~100 (bench.postrank_cost)
    assert 3 <= (twenty - ten) / 10 < 8
    # r=8 on q,k,v,o of Qwen3-4B: 2 x 8 x ((2560+4096) + 2 x (2560+1024) + (4096+2560)) x 36 layers
    assert lora_flops_per_token() == 2 * 8 * (6656 + 2 * 3584 + 6656) * 36
    call = postrank_call(ten, 10)
    plain = Call("x", QWEN3_4B, ten, call.output_tokens, 1)
    assert call.flops() - plain.flops() == pytest.approx(lora_flops_per_token() * (ten + call.output_tokens))


def test_postrank_cost_prints_the_prompt_table_and_the_step_times(capsys):
    from bench.postrank_cost import main

    assert main(["--items", "4", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "soft tokens (one per item, user)" in out and "the same features as text" in out
    assert "post-rank pre (encoder + soft-token prompt)" in out and "re-rank pre" in out
    assert out.count("post-rank of top 10") == 2  # A10 and A800 rows
