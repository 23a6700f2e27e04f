import pytest

from ensemble.config import ConfigError, PipelineConfig


def test_defaults_load():
    config = PipelineConfig.load()
    assert config.limits.max_candidates == 200 and config.limits.max_window_candidates == 50
    assert (config.rerank_window.size, config.rerank_window.stride) == (20, 10)  # rank_llm's
    assert config.generation["rerank"].max_input_len > 0


def test_file_overrides_only_what_it_names(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[limits]\nmax_candidates = 60\n[generation.rerank]\nmax_new_tokens = 64\n")
    config = PipelineConfig.load(path)
    assert config.limits.max_candidates == 60
    assert config.generation["rerank"].max_new_tokens == 64
    assert config.generation["rerank"].max_input_len == PipelineConfig.load().generation["rerank"].max_input_len


@pytest.mark.parametrize("text,key", [
    ("[limits]\nmax_candidates = 0\n", "limits.max_candidates"),
    ("[limits]\nmax_candidates = 20\n", "limits.max_window_candidates 50 exceeds limits.max_candidates"),
    ("[limits]\nmax_candidates = '50'\n", "limits.max_candidates"),
    ("[limits]\nmax_candiates = 5\n", "limits.max_candiates"),
    ("[generation.cover]\nmax_new_tokens = -1\n", "generation.cover.max_new_tokens"),
])
def test_bad_config_fails_naming_the_key(tmp_path, text, key):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        PipelineConfig.load(path)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        PipelineConfig.load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[limits\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        PipelineConfig.load(bad)
