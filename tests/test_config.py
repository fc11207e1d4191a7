"""emojiray.config: defaults, presets, key=value overrides and their one-line errors."""

from __future__ import annotations

import dataclasses

import pytest

from emojiray.config import (
    Config,
    DataConfig,
    RayConfig,
    available_presets,
    config_from_dict,
    dump_yaml,
    get_value,
    load_config,
    sections,
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
    for name, section in sections(cfg):
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if dataclasses.is_dataclass(value):
                continue  # a nested section (train.optim): its own fields are in sections() too
            out = load_config(None, [f"{name}.{f.name}={value}"])
            assert get_value(out, f"{name}.{f.name}") == value


# --- regressions of bugs found while writing these tests ---------------------------------


@pytest.mark.parametrize("text", ["1: 2\n", "data:\n  5: x\n"], ids=["top", "in-section"])
def test_preset_file_non_string_key(tmp_path, text):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    _error(str(p))


@pytest.mark.parametrize("raw", ["15.10", "on", "0x10"])
def test_override_str_field_keeps_raw_text(raw):
    assert load_config(None, [f"data.npm_version={raw}"]).data.npm_version == raw


# --- the optimiser section of each training section --------------------------------------------


@pytest.mark.parametrize("key", ["train.lr", "train.optim.lr"])
def test_optimiser_keys_with_or_without_the_section_name(key):
    cfg = load_config(None, [f"{key}=2e-3", "prior.weight_decay=0.5", "classifier.optim.warmup_steps=7"])
    assert cfg.train.optim.lr == 2e-3 and cfg.prior.optim.weight_decay == 0.5
    assert cfg.classifier.optim.warmup_steps == 7
    assert get_value(cfg, "train.lr") == 2e-3


def test_optimiser_keys_in_a_preset_file_either_way(tmp_path):
    p = tmp_path / "o.yaml"
    p.write_text("train:\n  lr: 1.0e-3\n  optim:\n    betas: [0.8, 0.9]\nupscale:\n  weight_decay: 0\n")
    cfg = load_config(str(p))
    assert cfg.train.optim.lr == 1e-3 and cfg.train.optim.betas == [0.8, 0.9]
    assert cfg.upscale.optim.weight_decay == 0.0 and cfg.upscale.optim.lr == 1e-3  # the rest keeps its default


def test_each_training_section_keeps_its_own_optimiser_defaults():
    cfg = Config()
    assert cfg.train.optim.betas == [0.9, 0.99] and cfg.train.optim.weight_decay == 0.0
    assert cfg.prior.optim.betas == [0.9, 0.95] and cfg.prior.optim.weight_decay == 0.01
    assert cfg.classifier.optim.lr == 2e-3 and cfg.classifier.optim.warmup_steps == -1
    assert cfg.upscale.optim.lr == 1e-3 and cfg.upscale.optim.min_lr_ratio == 0.05
    cfg.train.optim.lr = 1.0
    assert Config().train.optim.lr == 3e-4 and cfg.prior.optim.lr == 3e-4


def test_optimiser_errors_name_the_full_key():
    assert "'train.optim.lr' is -0.1: must be > 0" in _error(overrides=["train.lr=-0.1"])
    assert "train.optim.nope" in _error(overrides=["train.optim.nope=1"])
    assert "section" in _error(overrides=["prior.optim=1"])


def test_config_from_dict_reads_the_layout_before_the_optimiser_section():
    # a checkpoint's meta.json written before train.optim existed
    old = {"train": {"lr": 2e-3, "betas": [0.8, 0.9], "epochs": 3}, "prior": {"lr": 1e-3, "warmup_steps": 5},
           "classifier": {"weight_decay": 0.5}, "gone": {"x": 1}, "model": {"removed_key": 1}}
    cfg = config_from_dict(old)
    assert cfg.train.optim.lr == 2e-3 and cfg.train.optim.betas == [0.8, 0.9] and cfg.train.epochs == 3
    assert cfg.prior.optim.lr == 1e-3 and cfg.prior.optim.warmup_steps == 5
    assert cfg.classifier.optim.weight_decay == 0.5
    assert config_from_dict(cfg.to_dict()) == cfg


# --- the prior: what every kind shares, and a section per kind ---------------------------------


def test_each_prior_kind_has_its_own_section():
    cfg = load_config(None, ["prior.transformer.dim=96", "prior.maskgit.steps=5", "prior.pixelsnail.blocks=2"])
    assert cfg.prior.transformer.dim == 96 and cfg.prior.maskgit.dim == 256  # the sections are apart
    assert cfg.prior.maskgit.steps == 5 and cfg.prior.pixelsnail.blocks == 2
    assert "'prior.maskgit.steps' is 0" in _error(overrides=["prior.maskgit.steps=0"])
    assert "prior.transformer.steps" in _error(overrides=["prior.transformer.steps=3"])


def test_prior_keys_from_before_the_sections_set_what_they_stand_for():
    cfg = load_config(None, ["prior.dim=96", "prior.heads=6", "prior.maskgit_steps=5", "prior.channels=24",
                             "prior.dropout=0.2", "prior.label_smoothing=0.05"])
    assert cfg.prior.transformer.dim == cfg.prior.maskgit.dim == 96
    assert cfg.prior.transformer.heads == cfg.prior.maskgit.heads == 6
    assert cfg.prior.pixelsnail.heads == 3  # PixelSNAIL used half of prior.heads
    assert cfg.prior.maskgit.steps == 5 and cfg.prior.pixelsnail.channels == 24
    assert cfg.prior.transformer.dropout == cfg.prior.maskgit.dropout == cfg.prior.pixelsnail.dropout == 0.2
    assert cfg.prior.maskgit.label_smoothing == 0.05
    assert get_value(cfg, "prior.maskgit_steps") == 5
    assert "prior.transformer.dim" in _error(overrides=["prior.dim=abc"])
    set_value(cfg, "prior.layers", 3)
    assert cfg.prior.transformer.layers == cfg.prior.maskgit.layers == 3


def test_a_checkpoint_config_from_before_the_prior_sections_loads():
    old = {"prior": {"kind": "pixelsnail", "dim": 64, "layers": 2, "heads": 4, "dropout": 0.0, "channels": 32,
                     "blocks": 1, "res_per_block": 1, "maskgit_steps": 8, "choice_temperature": 2.0,
                     "label_smoothing": 0.0, "lr": 1e-3, "guidance": 2.0}}
    p = config_from_dict(old).prior
    assert (p.pixelsnail.channels, p.pixelsnail.blocks, p.pixelsnail.res_per_block, p.pixelsnail.heads) == (32, 1, 1, 2)
    assert p.transformer.dim == p.maskgit.dim == 64 and p.maskgit.steps == 8 and p.maskgit.choice_temperature == 2.0
    assert p.maskgit.label_smoothing == 0.0 and p.optim.lr == 1e-3 and p.guidance == 2.0
