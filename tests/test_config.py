"""emojiray.config: defaults, presets, key=value overrides and their one-line errors."""

from __future__ import annotations

import dataclasses

import pytest

from emojiray.config import (
    Config,
    DataConfig,
    RayConfig,
    available_presets,
    dump_yaml,
    load_config,
    set_value,
)
from emojiray.errors import EmojirayError


def _error(preset=None, overrides=()) -> str:
    with pytest.raises(EmojirayError) as info:
        load_config(preset, overrides)
    msg = str(info.value)
    assert msg and "\n" not in msg, f"error message must be one line: {msg!r}"
    return msg


# --- defaults and presets ---------------------------------------------------------------------


def test_defaults():
    cfg = load_config()
    assert cfg == Config()
    assert cfg.data == DataConfig()
    assert cfg.ray == RayConfig()
    assert cfg.data.size == 64
    assert cfg.data.dedupe is True
    assert cfg.data.val_fraction == 0.05
    assert cfg.data.source == "npm:google,twitter"
    assert cfg.ray.address == ""
    assert cfg.ray.num_gpus == -1


def test_defaults_are_independent_instances():
    a, b = load_config(), load_config()
    a.data.size = 1
    assert b.data.size == 64 and Config().data.size == 64


def test_available_presets():
    assert {"smoke", "full"} <= set(available_presets())


@pytest.mark.parametrize("name", ["smoke", "full"])
def test_presets_load(name):
    cfg = load_config(name)
    assert isinstance(cfg, Config)
    assert isinstance(cfg.data.size, int) and cfg.data.size > 0
    assert isinstance(cfg.ray.batch_size, int) and cfg.ray.batch_size > 0


@pytest.mark.parametrize("name", available_presets())
def test_every_preset_builds_its_models_and_passes_the_pipeline_checks(name):
    from emojiray.extensions.stage import check
    from emojiray.models import build_vqvae
    from emojiray.models.codes import CodeLayout
    from emojiray.models.prior import build_prior

    cfg = load_config(name)
    vq = build_vqvae(cfg.model, cfg.data.size)  # grids divide the image size, per-level lists are complete
    grids = vq.grid_sizes(cfg.data.size)
    layout = CodeLayout(tuple(vq.levels), tuple(tuple(grids[lv]) for lv in vq.levels),
                        tuple(q.K for q in (vq.quantizers[lv] for lv in vq.levels)))
    for kind in cfg.pipeline.priors:
        cfg.prior.kind = kind
        build_prior(cfg.prior, layout, 10)
    check(cfg)


def test_preset_values():
    assert load_config("smoke").ray.num_cpus == 2
    assert load_config("smoke").ray.batch_size == 256
    assert load_config("full").ray.batch_size == 512
    assert load_config("full").ray.num_cpus == 0


def test_to_dict_and_dump_yaml_round_trip():
    import yaml

    cfg = load_config("smoke", ["data.size=32"])
    d = cfg.to_dict()
    assert d["data"]["size"] == 32
    assert set(d) == {"data", "ray", "model", "train", "eval", "prior", "sample", "tune", "extensions", "classifier",
                      "interpolate", "restyle", "upscale", "inpaint", "pipeline"}
    assert yaml.safe_load(dump_yaml(cfg)) == d


# --- overrides --------------------------------------------------------------------------------


def test_override_int():
    cfg = load_config(None, ["data.size=32"])
    assert cfg.data.size == 32 and type(cfg.data.size) is int


@pytest.mark.parametrize(
    "raw, expected",
    [("false", False), ("true", True), ("no", False), ("yes", True), ("0", False), ("1", True),
     ("off", False), ("on", True)],
)
def test_override_bool(raw, expected):
    cfg = load_config(None, [f"data.dedupe={raw}"])
    assert cfg.data.dedupe is expected


def test_override_float():
    cfg = load_config(None, ["data.val_fraction=0.1"])
    assert cfg.data.val_fraction == pytest.approx(0.1) and type(cfg.data.val_fraction) is float


def test_override_float_from_int():
    cfg = load_config(None, ["data.test_fraction=0"])
    assert cfg.data.test_fraction == 0.0 and type(cfg.data.test_fraction) is float


def test_override_int_from_integral_float():
    cfg = load_config(None, ["data.size=32.0"])
    assert cfg.data.size == 32 and type(cfg.data.size) is int


def test_override_str():
    cfg = load_config(None, ["data.source=folder:/tmp/x", "ray.address=ray://head:10001"])
    assert cfg.data.source == "folder:/tmp/x"
    assert cfg.ray.address == "ray://head:10001"


def test_override_str_field_keeps_yaml_scalars_as_strings():
    # YAML would read these as int / bool; a str field must still get a str.
    cfg = load_config(None, ["data.npm_version=16", "data.background=true"])
    assert cfg.data.npm_version == "16"
    assert cfg.data.background == "True" or cfg.data.background == "true"
    assert type(cfg.data.background) is str


def test_override_empty_value_on_str():
    cfg = load_config(None, ["ray.address="])
    assert cfg.ray.address == ""


def test_override_whitespace_around_key():
    cfg = load_config(None, [" data.size =16"])
    assert cfg.data.size == 16


def test_override_negative_int():
    assert load_config(None, ["ray.num_gpus=-1"]).ray.num_gpus == -1
    assert load_config(None, ["ray.num_gpus=2"]).ray.num_gpus == 2


def test_overrides_apply_in_order():
    cfg = load_config(None, ["data.size=16", "data.size=48"])
    assert cfg.data.size == 48


def test_overrides_apply_after_named_preset():
    cfg = load_config("smoke", ["ray.batch_size=7"])
    assert cfg.ray.batch_size == 7
    assert cfg.ray.num_cpus == 2  # the rest of the preset survives


def test_set_value_directly():
    cfg = Config()
    set_value(cfg, "data.limit", "12")
    assert cfg.data.limit == 12


# --- preset files -----------------------------------------------------------------------------


def test_preset_file_path_and_overrides_after_it(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("data:\n  size: 16\n  dedupe: false\n  val_fraction: 0.2\nray:\n  batch_size: 8\n")
    cfg = load_config(str(p))
    assert cfg.data.size == 16 and cfg.data.dedupe is False
    assert cfg.data.val_fraction == pytest.approx(0.2)
    assert cfg.ray.batch_size == 8
    assert cfg.data.seed == 0  # untouched fields keep their defaults

    cfg = load_config(str(p), ["data.size=24", "ray.batch_size=9"])
    assert cfg.data.size == 24 and cfg.ray.batch_size == 9
    assert cfg.data.dedupe is False  # from the file, not overridden


def test_preset_file_yml_suffix(tmp_path):
    p = tmp_path / "mine.yml"
    p.write_text("ray:\n  num_cpus: 3\n")
    assert load_config(str(p)).ray.num_cpus == 3


def test_empty_preset_file_gives_defaults(tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("# nothing\n")
    assert load_config(str(p)) == Config()


def test_preset_file_values_are_coerced(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  npm_version: 15\n  val_fraction: 0\n")
    cfg = load_config(str(p))
    assert cfg.data.npm_version == "15"
    assert type(cfg.data.val_fraction) is float


# --- errors -----------------------------------------------------------------------------------


def test_unknown_key_names_the_key():
    msg = _error(overrides=["data.sizee=3"])
    assert "data.sizee" in msg
    assert "size" in msg  # lists the known keys


def test_unknown_section():
    msg = _error(overrides=["bogus.size=3"])
    assert "bogus" in msg


def test_unknown_top_level_key():
    msg = _error(overrides=["size=3"])
    assert "size" in msg


def test_key_below_a_field_is_rejected():
    msg = _error(overrides=["data.size.x=3"])
    assert "data.size" in msg


def test_unknown_preset():
    msg = _error("nonexistent-preset")
    assert "nonexistent-preset" in msg
    assert "smoke" in msg and "full" in msg


def test_missing_preset_file_path():
    msg = _error("/no/such/dir/preset.yaml")
    assert "preset" in msg


@pytest.mark.parametrize("override", ["data.size=abc", "data.size=3.5", "data.size=true",
                                      "data.size=[1, 2]"])
def test_bad_int(override):
    msg = _error(overrides=[override])
    assert "data.size" in msg and "int" in msg


@pytest.mark.parametrize("override", ["data.dedupe=maybe", "data.dedupe=2"])
def test_bad_bool(override):
    msg = _error(overrides=[override])
    assert "data.dedupe" in msg and "bool" in msg


@pytest.mark.parametrize("override", ["data.val_fraction=abc", "data.val_fraction=true"])
def test_bad_float(override):
    msg = _error(overrides=[override])
    assert "data.val_fraction" in msg and "float" in msg


@pytest.mark.parametrize("override", ["data.size", "", "=3"])
def test_missing_equals_or_key(override):
    msg = _error(overrides=[override])
    assert "key=value" in msg


@pytest.mark.parametrize("override", ["data=3", "ray={num_cpus: 2}"])
def test_setting_a_whole_section(override):
    msg = _error(overrides=[override])
    assert "section" in msg


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"],
                         ids=["list", "string", "number"])
def test_preset_file_not_a_mapping(tmp_path, text):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    msg = _error(str(p))
    assert "mapping" in msg


def test_preset_file_invalid_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("data: [unclosed\n  size: : :\n")
    msg = _error(str(p))
    assert "not valid YAML" in msg


def test_preset_file_unknown_key(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("data:\n  nope: 1\n")
    msg = _error(str(p))
    assert "data.nope" in msg


def test_preset_file_unknown_section(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("training:\n  epochs: 1\n")
    msg = _error(str(p))
    assert "training" in msg


def test_preset_file_section_not_a_mapping(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("data: 3\n")
    msg = _error(str(p))
    assert "data" in msg and "section" in msg


def test_preset_file_bad_type(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("data:\n  size: big\n")
    msg = _error(str(p))
    assert "data.size" in msg and "int" in msg


def test_errors_leave_no_partial_state():
    # A failed load raises; a fresh load afterwards still has the defaults.
    _error(overrides=["data.size=16", "data.size=abc"])
    assert load_config().data.size == 64


def test_config_field_types_are_all_supported():
    # Every field of every section accepts its own default given back as a string.
    cfg = Config()
    for section in dataclasses.fields(cfg):
        for f in dataclasses.fields(getattr(cfg, section.name)):
            value = getattr(getattr(cfg, section.name), f.name)
            out = load_config(None, [f"{section.name}.{f.name}={value}"])
            assert getattr(getattr(out, section.name), f.name) == value


# --- regressions of bugs found while writing these tests ---------------------------------


@pytest.mark.parametrize("text", ["1: 2\n", "data:\n  5: x\n"], ids=["top", "in-section"])
def test_preset_file_non_string_key(tmp_path, text):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    _error(str(p))


@pytest.mark.parametrize("raw", ["15.10", "on", "0x10"])
def test_override_str_field_keeps_raw_text(raw):
    assert load_config(None, [f"data.npm_version={raw}"]).data.npm_version == raw
