"""The sweep's search space: validation with one-line errors, and applying sampled values."""

from __future__ import annotations

import pytest

from emojiray.cli import main
from emojiray.config import Config, load_config
from emojiray.errors import EmojirayError
from emojiray.sweep.space import apply_params, validate_space


def test_the_default_space_is_valid_and_applies_per_level():
    cfg = load_config("smoke")
    assert validate_space(cfg.tune.space, cfg) == cfg.tune.space
    apply_params(cfg, {"model.codebook_size": 256, "model.beta": 0.5, "train.lr": 2e-3})
    assert cfg.model.codebook_size == [256, 256] and cfg.model.beta == 0.5 and cfg.train.optim.lr == 2e-3


@pytest.mark.parametrize("space, message", [
    ({}, "non-empty mapping"),
    ({"model.bogus": {"type": "uniform", "low": 0, "high": 1}}, "unknown config key 'model.bogus'"),
    ({"model": {"type": "uniform", "low": 0, "high": 1}}, "'model' is a config section"),
    ({"model.beta": {"type": "normal", "low": 0, "high": 1}}, "needs type: one of"),
    ({"model.beta": {"type": "loguniform", "low": 0, "high": 2}}, "needs low > 0"),
    ({"model.beta": {"type": "uniform", "low": 2, "high": 1}}, "needs low < high"),
    ({"model.beta": {"type": "uniform", "low": "a", "high": 1}}, "must be a number"),
    ({"model.codebook_size": {"type": "loguniform_int", "low": 32.5, "high": 64}}, "integer bounds"),
    ({"model.codebook_size": {"type": "choice", "values": []}}, "non-empty list"),
    ({"model.codebook_size": {"type": "choice", "values": ["many"]}}, "expects int"),
])
def test_invalid_spaces_are_one_line_errors(space, message):
    with pytest.raises(EmojirayError, match="invalid search space") as err:
        validate_space(space, Config())
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_reports_an_invalid_space_in_one_line(tmp_path, capsys):
    preset = tmp_path / "bad.yaml"
    preset.write_text("tune:\n  space:\n    model.beta: {type: loguniform, low: -1, high: 2}\n")
    assert main(["tune", "--preset", str(preset), "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "emojiray: error: invalid search space: model.beta (loguniform) needs low > 0, got -1"
