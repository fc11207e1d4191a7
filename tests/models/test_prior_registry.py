"""A new kind of prior is one file plus one registration line: a toy prior, registered here, is
accepted by the config and the CLI, trains in the Ray-free loop, saves, loads and samples."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from emojiray.config import Config, OptimConfig, PriorConfig, TrainConfig, config_from_dict, load_config
from emojiray.errors import EmojirayError
from emojiray.models.codes import CodeLayout, sample_logits
from emojiray.models.prior import PriorKind, build_prior, kind_settings, token_loss
from emojiray.registry import PRIORS, Registry
from emojiray.train import harness
from emojiray.train.prior_loop import PriorFamily
from helpers import set_keys, tiny_pair


# -- the toy prior: what a contributor writes in its own file ----------------------------------------


@dataclass
class ToySettings:
    """The toy prior's own config section: prior.toy."""

    init_scale: float = 0.0  # standard deviation of the table's initial logits

    RANGES: ClassVar[dict[str, str]] = {"init_scale": ">= 0"}


class PositionTable(nn.Module):
    """Every code independent: a learned table of logits per position (plus one per condition)."""

    def __init__(self, layout: CodeLayout, n_classes: int, init_scale: float = 0.0):
        super().__init__()
        self.layout, self.n_classes = layout, n_classes
        self.table = nn.Parameter(init_scale * torch.randn(layout.seq_len, layout.vocab_size))
        self.by_class = nn.Embedding(n_classes + 1, layout.vocab_size)
        nn.init.zeros_(self.by_class.weight)
        self.register_buffer("allowed", layout.allowed(), persistent=False)

    def forward(self, batch: int, cond: torch.Tensor | None) -> torch.Tensor:
        cond = torch.full((batch,), self.n_classes, dtype=torch.long) if cond is None else cond
        logits = self.table[None] + self.by_class(cond)[:, None]
        return logits.masked_fill(~self.allowed, float("-inf"))


def toy_loss(model, layout, codes, cond, generator=None, smoothing=0.0):
    tokens = layout.flatten(codes)
    return token_loss(model(tokens.shape[0], cond), tokens, smoothing)


def toy_sample(model, layout, n, cond, cfg, generator=None):
    logits = model(n, cond).float()
    return layout.unflatten(sample_logits(logits, cfg.temperature, cfg.top_k, cfg.top_p, generator))


TOY = PriorKind(build=lambda cfg, layout, n_classes: PositionTable(layout, n_classes, **vars(kind_settings(cfg))),
                loss=toy_loss, sample=toy_sample, settings=ToySettings)


@pytest.fixture
def toy():
    PRIORS.register("toy", TOY)  # the one registration line
    yield "toy"
    PRIORS.unregister("toy")


# -- what the rest of the system does with it --------------------------------------------------------


def test_the_config_and_the_cli_accept_a_registered_kind_and_forget_it_after(toy):
    assert load_config("smoke", ["prior.kind=toy"]).prior.kind == "toy"
    assert load_config("smoke", ["pipeline.priors=[transformer,toy]"]).pipeline.priors == ["transformer", "toy"]
    from emojiray.cli import build_parser

    args = build_parser().parse_args(["train-prior", "--codes", "c", "--out", "o", "--kind", "toy"])
    assert args.kind == "toy"
    PRIORS.unregister("toy")
    with pytest.raises(EmojirayError, match="'prior.kind' is 'toy': must be one of pixelsnail, transformer, maskgit"):
        load_config("smoke", ["prior.kind=toy"])


def test_a_registered_kind_brings_its_own_config_section(toy):
    cfg = load_config("smoke", ["prior.kind=toy", "prior.toy.init_scale=0.5"])
    assert kind_settings(cfg.prior) == ToySettings(init_scale=0.5)
    assert kind_settings(load_config("smoke", ["prior.kind=toy"]).prior) == ToySettings()  # its defaults
    assert config_from_dict(cfg.to_dict()) == cfg  # as a checkpoint's meta.json holds it
    layout = CodeLayout(levels=("top", "bottom"), grids=((2, 2), (4, 4)), sizes=(4, 8))
    assert float(build_prior(cfg.prior, layout, 0).table.detach().std()) > 0.3
    for override, message in [("prior.toy.init_scale=-1", "'prior.toy.init_scale' is -1.0: must be >= 0"),
                              ("prior.toy.init_scale=abc", "'prior.toy.init_scale' expects float"),
                              ("prior.toy.nope=1", "unknown config key 'prior.toy.nope'")]:
        with pytest.raises(EmojirayError, match=message):
            load_config("smoke", [override])
    PRIORS.unregister("toy")
    with pytest.raises(EmojirayError, match="unknown config key 'prior.toy'"):
        load_config("smoke", ["prior.toy.init_scale=1"])
    assert config_from_dict(cfg.to_dict()).prior.plugins == {}  # a kind this process does not know


def test_a_registered_kind_trains_in_the_ray_free_loop(toy):
    rng = np.random.default_rng(0)

    def codes(n):  # top code 0 or 1 by the condition, bottom codes fixed: a table can learn it all
        cond = rng.integers(0, 2, n)
        return {"top": torch.from_numpy(np.repeat(cond[:, None], 4, 1)),
                "bottom": torch.from_numpy(np.tile(np.arange(16) % 8, (n, 1))),
                "emotion": torch.from_numpy(cond), "category": torch.zeros(n, dtype=torch.int64),
                "vendor": torch.zeros(n, dtype=torch.int64)}

    cfg = Config(train=TrainConfig(report_every_s=0),
                 prior=PriorConfig(kind=toy, condition="emotion", cond_dropout=0.0, epochs=3, batch_size=32,
                                   optim=OptimConfig(lr=0.1, warmup_steps=0, weight_decay=0.0)))
    spec = {"levels": ["top", "bottom"], "grids": {"top": [2, 2], "bottom": [4, 4]}, "sizes": {"top": 4, "bottom": 8},
            "n_classes": 2, "examples": 256, "vocab": {}, "vqvae": "unused"}
    fam = PriorFamily(cfg, spec)
    assert isinstance(fam.model, PositionTable)
    metrics = []
    harness.run(fam, harness.in_memory_batches(codes(256), 32), harness.sequential_batches(codes(64), 64),
                lambda m, state: metrics.append(m))
    bits = [m["val_bits_per_code"] for m in metrics]
    assert len(bits) == 3 and bits[-1] < 0.5 * bits[0] and bits[0] < math.log2(8)
    assert metrics[-1]["val_accuracy"] > 0.95


def test_a_registered_kind_saves_loads_and_samples_images(toy, tmp_path):
    from emojiray.extensions.codes import require_mask_filling
    from emojiray.generate.sampler import Sampler

    prior_uri, _ = tiny_pair(tmp_path, kind=toy, condition="emotion")
    sampler = Sampler(prior_uri, device="cpu")
    assert sampler.kind == "toy" and isinstance(sampler.prior, PositionTable) and not sampler.fills_masks
    images, codes = sampler.sample(4, sampler.condition_ids("happy", 4), seed=1)
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8
    for level, grid, size in zip(sampler.layout.levels, sampler.layout.grids, sampler.layout.sizes):
        assert codes[level].shape == (4, *grid) and 0 <= int(codes[level].min()) and int(codes[level].max()) < size
    with pytest.raises(EmojirayError, match="re-samples masked codes, which a toy prior cannot do"):
        require_mask_filling(sampler, "inpainting")


def test_built_in_kinds_load_on_first_use_and_unknown_names_are_one_line_errors():
    reg = Registry("widget", {"table": "emojiray.models.transformer:PRIOR"})
    assert reg.names() == ("table",) and "table" in reg and "chair" not in reg
    assert isinstance(reg["table"], PriorKind)
    with pytest.raises(EmojirayError, match="unknown widget 'chair': choose from table"):
        reg["chair"]
    with pytest.raises(ValueError):
        reg.register("two words", object())
    layout = CodeLayout(levels=("top", "bottom"), grids=((2, 2), (4, 4)), sizes=(5, 7))
    for kind in PRIORS:
        cfg = set_keys(Config(), "prior", kind=kind, dim=16, layers=1, heads=2, channels=8, blocks=1, res_per_block=1)
        assert isinstance(build_prior(cfg.prior, layout, 0), nn.Module)
