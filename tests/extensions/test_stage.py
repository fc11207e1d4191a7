"""The pipeline's extension stage refuses bad settings before the pipeline spends time on anything."""

from __future__ import annotations

import pytest

from emojiray.config import load_config
from emojiray.errors import EmojirayError
from emojiray.extensions import stage


def _cfg(*overrides: str):
    return load_config("smoke", list(overrides))


def test_the_smoke_settings_pass():
    stage.check(_cfg())


@pytest.mark.parametrize("overrides, message", [
    (["extensions.run=[interpolate,paint]"],
     r"config key 'extensions\.run' is \['interpolate', 'paint'\]: must be one of interpolate, condition, restyle, "
     r"upscale, inpaint \(each item\)"),
    (["pipeline.priors=[transformer]", "extensions.run=[inpaint]"], "re-sample masked codes"),
    (["prior.condition=none", "extensions.extra_conditions=[]", "extensions.run=[condition]"],
     "needs a conditional prior"),
])
def test_bad_settings_are_one_line_errors(overrides, message):
    with pytest.raises(EmojirayError, match=message) as info:  # the config's ranges, then the stage's own check
        stage.check(_cfg(*overrides))
    assert "\n" not in str(info.value)


def test_the_pipeline_checks_them_before_its_first_stage(tmp_path):
    from emojiray.pipeline import run_pipeline

    with pytest.raises(EmojirayError, match="re-sample masked codes"):
        run_pipeline(_cfg("pipeline.priors=[transformer]", "extensions.run=[inpaint]"), str(tmp_path / "run"),
                     log=lambda *_: None)
    assert not (tmp_path / "run").exists()  # nothing prepared, nothing written


def test_a_misspelt_demo_emoji_stops_the_pipeline_after_prepare(npm_cache, tmp_path, monkeypatch):
    """extensions.demo needs the data to check: right after prepare, before any Ray stage."""
    import emojiray.raykit
    from emojiray.pipeline import run_pipeline

    def no_ray(*_, **__):
        raise AssertionError("Ray started before the demo emoji were checked")

    monkeypatch.setattr(emojiray.raykit, "init_ray", no_ray)
    cfg = _cfg("data.npm_version=0.0.0-test", "data.size=32", "extensions.run=[upscale]",
               "extensions.demo=[grinning facce]")
    with pytest.raises(EmojirayError, match="no emoji named 'grinning facce'"):
        run_pipeline(cfg, str(tmp_path / "run"), log=lambda *_: None)
    assert (tmp_path / "run" / "data" / "manifest.json").exists()  # prepared, nothing trained
    assert not (tmp_path / "run" / "tokenizer").exists()


def test_no_extensions_is_allowed():
    stage.check(_cfg("extensions.run=[]", "pipeline.priors=[transformer]"))
