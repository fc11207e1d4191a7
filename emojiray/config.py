"""One typed configuration: dataclasses, YAML presets and ``--set key=value`` overrides.

A value keeps one dotted name from the YAML preset to the module that reads it
(``data.size`` is ``Config.data.size`` is ``DataConfig.size``). Precedence, lowest first:
dataclass defaults, the preset (``emojiray/presets/<name>.yaml`` or a path to a YAML file),
then ``--set`` overrides in the order given. Sections nest where one shape serves several owners:
every training section has an optimiser section (``train.optim``, :class:`OptimConfig`), and each
kind of prior a section named after it (``prior.maskgit``). Keys of earlier layouts keep working:
an optimiser key may leave out ``optim.`` and :data:`ALIASES` maps the prior's old flat keys.

Each section documents the range of its values in ``RANGES`` (``"> 0"``, ``">= 1"``, ``"[0, 1)"``,
``"{vq, fsq}"``; a list value's range holds for each item). :func:`load_config` checks them all,
so a bad value is one line naming the key, the value and the range before any work or Ray starts.

Values are read by their field's type with pydantic (a ``TypeAdapter`` over these standard
dataclasses). Why pydantic: it comes installed with Ray (no new dependency, pinned in
constraints.txt), it validates the dataclasses as they are (no base class, no generated code),
and its lax mode reads command-line text by type (``32``, ``yes``, ``1e-3``). OmegaConf's
structured configs would need a package that is not installed and the same additions; tyro
builds a command line, which this project already has. Three rules of this project go on top, as
the annotated types below: a bool is not a number, a scalar is text where text is asked, and a
list may be written ``a,b``. This module walks the dotted keys (so that an unknown key is named
with the keys known there) and turns pydantic's first error into one line.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import yaml
from pydantic import BeforeValidator, TypeAdapter, ValidationError

from emojiray.errors import EmojirayError
from emojiray.registry import EXTENSIONS, PRIORS, Registry

PRESET_DIR = Path(__file__).parent / "presets"

# The names a choice setting takes, each list written once (the modules that implement them import it).
# Kinds of prior and extensions are plug-ins: their names come from the registries (emojiray/registry.py).
TOKENIZER_ARCHS = ("vqvae2", "vqvae")
QUANTIZERS = ("vq", "fsq")
RECON_LOSSES = ("mse", "l1")  # the tokenizer's pixel loss
LABELS = ("emotion", "category", "vendor")  # the per-image labels a prior or the classifier learns
CONDITIONS = ("none", *LABELS)
CODE_LEVELS = ("bottom", "top")
EVAL_SPLITS = ("train", "val", "test", "heldout")  # heldout = val + test


def _number(value: Any) -> Any:
    """A number field's input: a bool is refused (``data.size: true`` is a mistake), text is read."""
    if isinstance(value, bool):
        raise ValueError("a bool is not a number")
    if isinstance(value, str):
        for parse in (int, float):  # "32.0" is an int field's 32; pydantic reads "32" but not "32.0"
            try:
                return parse(value)
            except ValueError:
                pass
    return value


def _text(value: Any) -> Any:
    """A text field's input: YAML's ``npm_version: 16`` is "16", an empty YAML value is ""."""
    if value is None:
        return ""
    return str(value) if isinstance(value, (bool, int, float)) else value


def _yaml_text(value: Any, default: Any) -> Any:
    """Text written as YAML (``[1, 2]``, ``{a: 1}``) read as such; other input as it is."""
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value) if value.strip() else default
    except yaml.YAMLError:
        return value


def _items(value: Any) -> Any:
    """A list field's input: a list, YAML text (``[1, 2]``) or comma-separated text (``1,2``)."""
    if isinstance(value, str) and not value.lstrip().startswith("["):
        return [item.strip() for item in value.split(",") if item.strip()]
    return _yaml_text(value, [])


T = TypeVar("T")
Int = Annotated[int, BeforeValidator(_number)]
Float = Annotated[float, BeforeValidator(_number)]
Str = Annotated[str, BeforeValidator(_text)]
Items = Annotated[list[T], BeforeValidator(_items)]
YamlDict = Annotated[dict[str, Any], BeforeValidator(functools.partial(_yaml_text, default={}))]


def one_of(names: tuple[str, ...] | Registry) -> str:
    """The RANGES entry of a choice: ``{a, b, c}``."""
    return "{" + ", ".join(names) + "}"


def spec_text(spec: str | Registry) -> str:
    """A RANGES entry as text; a registry's names are read when asked (plug-ins add names)."""
    return one_of(spec) if isinstance(spec, Registry) else spec


@dataclass
class DataConfig:
    """Dataset preparation (`emojiray data prepare`) and streaming."""

    # npm:google,twitter | hf:NAME_OR_PATH | folder:PATH | parquet:URI
    source: Str = "npm:google,twitter"
    npm_version: Str = "16.0.0"  # version of the emoji-datasource-<vendor> npm packages
    size: Int = 64  # output side in pixels (square, RGB)
    background: Str = "white"  # colour that transparent pixels are composited onto
    val_fraction: Float = 0.05  # share of emoji identities held out for validation
    test_fraction: Float = 0.05  # share of emoji identities held out for test
    seed: Int = 0  # split seed: the same seed always puts an emoji in the same split
    shard_rows: Int = 2048  # rows per Parquet shard
    dedupe: bool = True  # drop exact duplicate images (after preprocessing)
    max_pixels: Int = 40_000_000  # larger inputs are refused as decompression bombs
    limit: Int = 0  # keep only the first N inputs (0 = all), for quick experiments
    labels_csv: Str = ""  # folder source: CSV with a `file` column and label columns
    hf_split: Str = "train"  # hf source: which split to read
    hf_image_column: Str = ""  # hf source: image column (default: the first Image feature)
    hf_text_column: Str = ""  # hf source: text/name column (default: `text` or first string)

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "size": "[8, 1024]", "val_fraction": "[0, 1)", "test_fraction": "[0, 1)", "seed": ">= 0", "shard_rows": ">= 1",
        "max_pixels": ">= 1", "limit": ">= 0"
    }

    def check(self) -> None:
        """What RANGES cannot say (one key's range depends on another): run by validate_section."""
        held_out = self.val_fraction + self.test_fraction
        if held_out >= 1:
            raise EmojirayError(f"config keys 'data.val_fraction' + 'data.test_fraction' are {held_out:g}: "
                                f"must be < 1 (no training images left)")


@dataclass
class RayConfig:
    """How to reach Ray: an address (or RAY_ADDRESS) for a cluster, else an embedded local Ray."""

    address: Str = ""  # "" = RAY_ADDRESS if set, else start a local Ray
    num_cpus: Int = 0  # local Ray only; 0 = all cores of this machine
    num_gpus: Int = -1  # local Ray only; -1 = detect
    num_workers: Int = 0  # training workers; 0 = one per GPU, or as many CPUs as are left
    data_cpus: Int = -1  # CPUs kept free for Ray Data beside training workers (-1 = auto: none when CPU
    # workers train from a materialised dataset, else 1)
    use_gpu: bool = True  # train on GPUs when the cluster has them
    batch_size: Int = 256  # images per batch when streaming shards
    cache_data: bool = True  # materialise decoded images in the object store once (small datasets)
    # a training worker keeps its share of the train split in its own memory when the share is under
    # this many MiB: read through Ray Data once, no Ray Data iteration per epoch (0 = stream every epoch)
    worker_cache_mb: Int = 1024

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "num_cpus": ">= 0", "num_gpus": ">= -1", "num_workers": ">= 0", "data_cpus": ">= -1", "batch_size": ">= 1",
        "worker_cache_mb": ">= 0"
    }


@dataclass
class ModelConfig:
    """The VQ-VAE tokenizer. Per-level lists are ordered [bottom, top] (flat uses only bottom)."""

    arch: Str = "vqvae2"  # vqvae2 (top + bottom codes) | vqvae (one code grid)
    channels: Int = 128  # hidden channels of encoders/decoders
    res_blocks: Int = 2  # residual blocks per encoder/decoder
    res_channels: Int = 32  # channels inside a residual block
    up_blocks: Int = 0  # decoder residual blocks at each upsampled resolution (0 = the paper's decoder)
    downsample: Items[Int] = field(default_factory=lambda: [4, 2])  # image->bottom, bottom->top
    quantizer: Str = "vq"  # vq (a learned codebook) | fsq (finite scalar quantisation: no codebook)
    codebook_size: Items[Int] = field(default_factory=lambda: [512, 512])  # K per level (vq)
    # fsq: values per channel, one list per level; K = their product (e.g. [8, 5, 5, 5] = 1000 codes)
    fsq_levels: Items[Items[Int]] = field(default_factory=lambda: [[8, 5, 5, 5], [8, 5, 5, 5]])
    code_dim: Items[Int] = field(default_factory=lambda: [64, 64])  # channels at each quantizer
    lookup_dim: Int = 0  # 0 = code_dim; smaller = low-dimensional codebook lookup
    l2_normalize: bool = False  # cosine-similarity codebooks
    beta: Float = 0.25  # commitment weight
    ema: bool = True  # EMA codebook updates (else learned by gradient)
    ema_decay: Float = 0.99
    kmeans_init: bool = True  # initialise codebooks by k-means on the first batch
    dead_code_steps: Int = 100  # re-seed a code unused for this many steps (0 = never)
    rotation_trick: bool = False  # vq: the rotation trick's gradient instead of straight-through

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "arch": one_of(TOKENIZER_ARCHS), "channels": ">= 1", "res_blocks": ">= 0", "res_channels": ">= 1",
        "up_blocks": ">= 0", "downsample": ">= 2", "quantizer": one_of(QUANTIZERS), "codebook_size": ">= 2",
        "fsq_levels": ">= 2", "code_dim": ">= 1", "lookup_dim": ">= 0", "beta": ">= 0", "ema_decay": "[0, 1)",
        "dead_code_steps": ">= 0"
    }


@dataclass
class OptimConfig:
    """AdamW with a linear warm-up and a cosine decay: the optimiser of every model trained here, a
    section of its own in each training section (``train.optim``, ``prior.optim``,
    ``classifier.optim``, ``upscale.optim``). Its keys may be written without ``optim.``
    (``train.lr`` is ``train.optim.lr``), as they were before the section existed."""

    lr: Float = 3e-4
    weight_decay: Float = 0.0
    betas: Items[Float] = field(default_factory=lambda: [0.9, 0.99])
    warmup_steps: Int = 200  # linear warm-up (-1 = a tenth of the training steps, at most 100)
    min_lr_ratio: Float = 0.1  # cosine decay ends at lr * min_lr_ratio
    grad_clip: Float = 1.0  # 0 = off

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "lr": "> 0", "weight_decay": ">= 0", "betas": "[0, 1)", "warmup_steps": ">= -1", "min_lr_ratio": "[0, 1]",
        "grad_clip": ">= 0"
    }


@dataclass
class TrainConfig:
    """Training the tokenizer (``emojiray train-vqvae``)."""

    epochs: Int = 10
    max_seconds: Float = 0.0  # stop after this much training time (0 = no limit)
    batch_size: Int = 128  # per worker
    optim: OptimConfig = field(default_factory=OptimConfig)
    # bf16 autocast on GPU, and for training steps on a CPU with native bf16 (AVX512-BF16/AMX): on such a
    # 2-core CPU the tokenizer trains 1.24-1.60x the images/s with a better PSNR after the same time
    # (results/bench/cpu_bf16.md), a prior 1.2-1.6x (results/cpu/prior_step_cost.txt) with 4.43 instead of
    # 4.59 val bits/code after 600 s (results/cpu/prior_recipes.md); priors validate in fp32 on CPU
    bf16: bool = True
    channels_last: bool = True
    compile: bool = False  # torch.compile the model
    seed: Int = 0
    max_failures: Int = 2  # worker failures recovered from the last checkpoint
    # validate, checkpoint and draw a grid after this much training time, inside an epoch if need be,
    # and at the end (0 = after every epoch); each report costs a validation pass and a checkpoint
    report_every_s: Float = 60.0
    log_every: Int = 50  # steps between TensorBoard scalars
    image_every: Int = 1  # reports between TensorBoard image grids (0 = never)
    eval_batches: Int = 0  # validation batches per epoch (0 = the whole split)
    # The tokenizer's reconstruction loss (emojiray/models/vqvae.py::reconstruction_loss): mse or l1 on
    # the pixels, plus edge_weight times the L1 distance between the two images' horizontal and vertical
    # pixel differences. At 32 px on 2 cores after 240 s (results/cpu/tokenizer_recipes.md), mse with
    # edge_weight 0.1 reaches rFID 37.98 against 44.03 for mse alone on a 16x16 grid, at the same PSNR;
    # 101.6 against 112.9 on the cpu preset's 8x8 grid
    recon_loss: Str = "mse"
    edge_weight: Float = 0.0
    # The tokenizer's adversarial loss (VQGAN): a patch discriminator (emojiray/models/discriminator.py)
    # learns to tell reconstructions from originals, and the decoder is trained to fool it as well
    adv_weight: Float = 0.0  # weight of the decoder's adversarial loss (0 = off: reconstruction + commitment only)
    adv_start_step: Int = 0  # training step from which the discriminator and the adversarial loss run
    adv_adaptive: bool = True  # scale the adversarial gradient to the reconstruction's (times adv_weight)
    disc_channels: Int = 64  # the discriminator's first conv (doubling per layer, at most 8x)
    disc_layers: Int = 3  # strided 4x4 convs: 32 px -> a 4x4 grid of patch logits
    disc_lr: Float = 0.0  # the discriminator's learning rate (0 = train.optim.lr), constant, Adam betas (0.5, 0.9)

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "epochs": ">= 1", "max_seconds": ">= 0", "batch_size": ">= 1", "seed": ">= 0",
        "max_failures": ">= 0", "report_every_s": ">= 0", "log_every": ">= 1", "image_every": ">= 0",
        "eval_batches": ">= 0", "recon_loss": one_of(RECON_LOSSES), "edge_weight": ">= 0", "adv_weight": ">= 0",
        "adv_start_step": ">= 0", "disc_channels": ">= 1",
        "disc_layers": ">= 1", "disc_lr": ">= 0"
    }


@dataclass
class TransformerConfig:
    """The autoregressive transformer prior (``prior.kind: transformer``, ``prior.transformer.*``)."""

    dim: Int = 256  # width
    layers: Int = 8
    heads: Int = 8
    dropout: Float = 0.1

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "dim": ">= 1", "layers": ">= 1", "heads": ">= 1", "dropout": "[0, 1)"
    }


@dataclass
class MaskGITConfig(TransformerConfig):
    """MaskGIT (``prior.kind: maskgit``, ``prior.maskgit.*``): a bidirectional transformer of the same
    shape, decoded in parallel steps."""

    steps: Int = 12  # parallel decoding steps
    # the choice temperature: Gumbel noise of this scale on the confidences that pick which predictions
    # to keep, annealed linearly to 0 over the steps (Chang et al. 2022 use 4.5)
    choice_temperature: Float = 4.5
    # label smoothing of the training loss (Chang et al. 2022 use 0.1); the AR priors train on the plain
    # likelihood they are measured by; validation NLL is always plain
    label_smoothing: Float = 0.1

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        **TransformerConfig.RANGES, "steps": ">= 1", "choice_temperature": ">= 0", "label_smoothing": "[0, 1)"
    }


@dataclass
class PixelSNAILConfig:
    """PixelSNAIL (``prior.kind: pixelsnail``, ``prior.pixelsnail.*``)."""

    channels: Int = 128
    blocks: Int = 4  # gated residual stack + causal attention
    res_per_block: Int = 2
    heads: Int = 4  # attention heads
    dropout: Float = 0.1

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "channels": ">= 1", "blocks": ">= 1", "res_per_block": ">= 1", "heads": ">= 1", "dropout": "[0, 1)"
    }


@dataclass
class PriorConfig:
    """A prior over VQ codes (`emojiray train-prior`) and how it samples: what every kind shares, and
    one section per built-in kind, named after it, for its model (``prior.maskgit.steps``)."""

    kind: Str = "transformer"  # a name in emojiray.registry.PRIORS: pixelsnail | transformer | maskgit
    condition: Str = "none"  # none | emotion | category | vendor
    cond_dropout: Float = 0.1  # share of training examples seen without their condition (for CFG)
    mirror: bool = False  # extract-codes adds the codes of the training images flipped left to right
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    maskgit: MaskGITConfig = field(default_factory=MaskGITConfig)
    pixelsnail: PixelSNAILConfig = field(default_factory=PixelSNAILConfig)
    # the sections of plug-in kinds, by name: a kind registered with ``settings`` (a dataclass) is
    # written prior.<name>.<key> like a built-in one and kept here (emojiray.models.prior.PriorKind)
    plugins: YamlDict = field(default_factory=dict)
    temperature: Float = 1.0
    top_k: Int = 0
    top_p: Float = 1.0
    guidance: Float = 1.0  # classifier-free guidance scale (1 = plain conditional)
    epochs: Int = 20
    max_seconds: Float = 0.0  # stop after this much training time (0 = no limit)
    batch_size: Int = 64
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(weight_decay=0.01, betas=[0.9, 0.95],
                                                                   warmup_steps=100))
    sheet_samples: Int = 32  # samples in the sheet written after training

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "kind": PRIORS, "condition": one_of(CONDITIONS), "cond_dropout": "[0, 1)", "temperature": ">= 0",
        "top_k": ">= 0", "top_p": "(0, 1]", "guidance": ">= 0", "epochs": ">= 1", "max_seconds": ">= 0",
        "batch_size": ">= 1", "sheet_samples": ">= 0"
    }


def _half(heads: Any) -> Any:
    return max(1, heads // 2) if isinstance(heads, int) and not isinstance(heads, bool) else heads


# Keys from before the prior's per-kind sections, still read (users' --set lines, presets and the
# meta.json of checkpoints written then): each sets the keys it stands for now, through the function
# beside a key where the meaning changed (PixelSNAIL used half of prior.heads).
ALIASES: dict[str, tuple[tuple[str, Any], ...]] = {
    "prior.dim": (("prior.transformer.dim", None), ("prior.maskgit.dim", None)),
    "prior.layers": (("prior.transformer.layers", None), ("prior.maskgit.layers", None)),
    "prior.heads": (("prior.transformer.heads", None), ("prior.maskgit.heads", None), ("prior.pixelsnail.heads", _half)),
    "prior.dropout": (("prior.transformer.dropout", None), ("prior.maskgit.dropout", None),
                      ("prior.pixelsnail.dropout", None)),
    "prior.channels": (("prior.pixelsnail.channels", None),),
    "prior.blocks": (("prior.pixelsnail.blocks", None),),
    "prior.res_per_block": (("prior.pixelsnail.res_per_block", None),),
    "prior.maskgit_steps": (("prior.maskgit.steps", None),),
    "prior.choice_temperature": (("prior.maskgit.choice_temperature", None),),
    "prior.label_smoothing": (("prior.maskgit.label_smoothing", None),),
}


@dataclass
class EvalConfig:
    """Measuring a trained tokenizer (`emojiray eval-vqvae`)."""

    split: Str = "test"  # held-out split to measure on
    fid_images: Int = 0  # images used for rFID (0 = the whole split; fewer = quicker, noisier)
    batch_size: Int = 256
    # `emojiray eval-samples`
    real_images: Int = 0  # real images per split with Inception features (0 = all; a seeded subset)
    memorization_quantile: Float = 0.01  # near-copy threshold: this quantile of held-out->train distances
    min_condition_images: Int = 20  # per-condition FID only where both sets have this many images
    kid_subsets: Int = 100
    pr_k: Int = 3  # k of the k-NN manifolds of precision/recall
    actors: Int = 0  # feature actors (0 = one per GPU, or one per 2 free CPUs, 2 threads each)

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "split": one_of(EVAL_SPLITS), "fid_images": ">= 0", "batch_size": ">= 1", "real_images": ">= 0",
        "memorization_quantile": "(0, 1)", "min_condition_images": ">= 2", "kid_subsets": ">= 1", "pr_k": ">= 1",
        "actors": ">= 0"
    }


@dataclass
class SampleConfig:
    """Batch generation with a Ray actor pool (`emojiray sample`)."""

    n: Int = 2000  # samples per run (the pipeline's run per prior)
    batch_size: Int = 256  # samples generated per forward batch in an actor
    shard_size: Int = 1000  # samples per Parquet shard: the unit of work, resumption and seeding
    seed: Int = 0
    png: bool = True  # also write one PNG per sample
    actors: Int = 0  # 0 = one per GPU, or one per CPU left after ray.data_cpus

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "n": ">= 1", "batch_size": ">= 1", "shard_size": ">= 1", "seed": ">= 0", "actors": ">= 0"
    }


def _default_space() -> dict[str, Any]:
    return {
        "model.codebook_size": {"type": "loguniform_int", "low": 32, "high": 4096},
        "model.beta": {"type": "loguniform", "low": 0.01, "high": 2.0},
        "model.ema_decay": {"type": "uniform", "low": 0.9, "high": 0.999},
        "model.dead_code_steps": {"type": "choice", "values": [0, 50, 100, 400]},
        "model.code_dim": {"type": "choice", "values": [16, 32, 64]},
        "train.lr": {"type": "loguniform", "low": 1.0e-4, "high": 3.0e-3},
    }


@dataclass
class SweepConfig:
    """A rate-distortion sweep of the tokenizer (`emojiray tune`): Ray Tune + Optuna + ASHA."""

    trials: Int = 48
    max_concurrent: Int = 0  # trials at once (0 = as many as the resources allow)
    gpus_per_trial: Float = 0.25  # fractional GPUs: several trials share one GPU (ignored without GPUs)
    cpus_per_trial: Int = 1  # CPUs of each trial's training worker
    grace_period: Int = 1  # ASHA: epochs every trial gets before it can be stopped
    reduction_factor: Int = 3  # ASHA: keep the best 1/reduction_factor at each rung
    fid_images: Int = 0  # held-out images for each finished trial's rFID (0 = all; -1 = no rFID)
    seed: Int = 0  # Optuna's TPE sampler seed
    budgets: Items[Float] = field(default_factory=list)  # rate budgets (bits/image) for presets ([] = auto)
    # dotted config key -> {type: loguniform|uniform|loguniform_int|int|choice, low, high | values}
    space: YamlDict = field(default_factory=_default_space)

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "trials": ">= 1", "max_concurrent": ">= 0", "gpus_per_trial": "> 0", "cpus_per_trial": ">= 1",
        "grace_period": ">= 1", "reduction_factor": ">= 2", "fid_images": ">= -1", "seed": ">= 0", "budgets": "> 0"
    }


@dataclass
class ExtensionsConfig:
    """What the five extensions share, and which of them `emojiray pipeline` runs."""

    run: Items[Str] = field(default_factory=lambda: ["interpolate", "condition", "restyle", "upscale", "inpaint"])
    prior: Str = "maskgit"  # the pipeline prior the extensions re-sample codes with (MaskGIT fills any mask)
    eval_images: Int = 0  # held-out images (or pairs) each extension's metric uses (0 = all; a seeded subset)
    examples: Int = 8  # held-out examples (columns) on each metric sheet
    seed: Int = 0
    condition_samples: Int = 64  # samples per condition value for the condition sheets and metrics
    extra_conditions: Items[Str] = field(default_factory=lambda: ["category"])  # more MaskGIT priors for sheets
    demo: Items[Str] = field(default_factory=lambda: ["grinning face", "crying face"])  # emoji of the demo sheets

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "run": EXTENSIONS, "prior": PRIORS, "eval_images": ">= 0", "examples": ">= 1",
        "seed": ">= 0", "condition_samples": ">= 1", "extra_conditions": one_of(LABELS)
    }


def _helper_optim(lr: float) -> OptimConfig:
    """The helper models' optimiser: PyTorch's AdamW betas, a short warm-up, decay to 5 %."""
    return OptimConfig(lr=lr, weight_decay=1.0e-4, betas=[0.9, 0.999], warmup_steps=-1, min_lr_ratio=0.05)


@dataclass
class ClassifierConfig:
    """The emoji classifier (pure PyTorch CNN, one head per label) behind agreement and Inception Score."""

    labels: Items[Str] = field(default_factory=lambda: ["emotion", "category", "vendor"])
    channels: Int = 64
    epochs: Int = 30
    max_seconds: Float = 0.0  # stop after this much training time (0 = no limit)
    batch_size: Int = 128
    optim: OptimConfig = field(default_factory=lambda: _helper_optim(lr=2.0e-3))
    is_splits: Int = 10  # Inception Score splits (fewer when a set is small)

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "labels": one_of(LABELS), "channels": ">= 1", "epochs": ">= 1", "max_seconds": ">= 0", "batch_size": ">= 1",
        "is_splits": ">= 1"
    }


@dataclass
class InterpolateConfig:
    """`emojiray interpolate A B`: latent and prior paths between two emoji."""

    steps: Int = 10  # frames after the first (steps + 1 frames in all)
    remask: Float = 0.3  # share of codes MaskGIT re-samples at the middle step (tapered by 4t(1-t) to the ends)
    gif_ms: Int = 120  # frame duration of the animated GIF

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "steps": ">= 1", "remask": "[0, 1]", "gif_ms": ">= 1"
    }


@dataclass
class RestyleConfig:
    """`emojiray restyle --to VENDOR FILE`: re-sample a share of the codes under a vendor-conditioned prior."""

    share: Float = 0.0  # share of codes re-sampled (0 = the share chosen on the validation split)
    shares: Items[Float] = field(default_factory=lambda: [0.25, 0.5, 0.75])  # candidates for that choice
    guidance: Float = 2.0
    steps: Int = 8  # MaskGIT decoding steps
    levels: Items[Str] = field(default_factory=list)  # code levels that may change ([] = all; e.g. [bottom])

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "share": "[0, 1]", "shares": "(0, 1]", "guidance": ">= 0", "steps": ">= 1", "levels": one_of(CODE_LEVELS)
    }


@dataclass
class UpscaleConfig:
    """`emojiray upscale FILE`: a low-resolution encoder into the tokenizer's codes (super-resolution)."""

    factor: Int = 2  # input side = data.size / factor (32 -> 64 at the default size)
    channels: Int = 128
    res_blocks: Int = 4
    epochs: Int = 30
    max_seconds: Float = 0.0
    batch_size: Int = 128
    optim: OptimConfig = field(default_factory=lambda: _helper_optim(lr=1.0e-3))

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "factor": ">= 2", "channels": ">= 1", "res_blocks": ">= 0", "epochs": ">= 1", "max_seconds": ">= 0",
        "batch_size": ">= 1"
    }


@dataclass
class InpaintConfig:
    """`emojiray inpaint FILE --mask ...`: MaskGIT re-samples the codes under a mask."""

    completions: Int = 4  # completions per input
    box: Float = 0.4  # side of the random evaluation boxes, as a share of the image side
    steps: Int = 8  # MaskGIT decoding steps
    temperature: Float = 1.0

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "completions": ">= 1", "box": "(0, 1)", "steps": ">= 1", "temperature": ">= 0"
    }


@dataclass
class PipelineConfig:
    """Which optional stages `emojiray pipeline` runs."""

    priors: Items[Str] = field(default_factory=lambda: ["pixelsnail", "transformer", "maskgit"])
    report: bool = True  # write the static HTML report (RUN/report/index.html) at the end

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "priors": PRIORS
    }


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    tune: SweepConfig = field(default_factory=SweepConfig)
    extensions: ExtensionsConfig = field(default_factory=ExtensionsConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    interpolate: InterpolateConfig = field(default_factory=InterpolateConfig)
    restyle: RestyleConfig = field(default_factory=RestyleConfig)
    upscale: UpscaleConfig = field(default_factory=UpscaleConfig)
    inpaint: InpaintConfig = field(default_factory=InpaintConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_config(preset: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Build a Config from defaults, a preset (name or YAML path) and ``key=value`` overrides;
    every value is read by its field's type and checked against its documented range (:func:`validate`)."""
    tree = Config().to_dict()  # every default given: a section's own defaults hold for the keys not set
    for key, value in _flatten(_read_preset(preset) if preset else {}):
        _put(tree, key, value)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise EmojirayError(f"bad override {item!r}: expected key=value, e.g. data.size=32")
        _put(tree, key.strip(), raw.strip())
    return validate(_read_plugins(_read(Config, tree)))


def within(value: Any, spec: str | Registry) -> bool:
    """Whether one value lies in a RANGES entry: ``"{a, b}"`` or a registry, ``"[lo, hi)"`` (any
    brackets), ``"> x"`` or ``">= x"``; numbers must be finite."""
    if isinstance(spec, Registry):
        return str(value) in spec
    if spec.startswith("{"):
        return str(value) in {choice.strip() for choice in spec[1:-1].split(",")}
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if spec[0] in "[(":
        lo, hi = (float(x) for x in spec[1:-1].split(","))
        return (lo <= value if spec[0] == "[" else lo < value) and (value <= hi if spec[-1] == "]" else value < hi)
    op, bound = spec.split()
    return value > float(bound) if op == ">" else value >= float(bound)


def range_text(spec: str | Registry) -> str:
    """A RANGES entry in words: "one of vq, fsq", "in [0, 1)", "> 0"."""
    spec = spec_text(spec)
    if spec.startswith("{"):
        return f"one of {spec[1:-1]}"
    return f"in {spec}" if spec[0] in "[(" else spec


def validate(cfg: Config) -> Config:
    """Check every value against its section's RANGES; one line naming the key, the value and the
    range for the first that is outside."""
    for name, section in sections(cfg):
        validate_section(name, section)
    return cfg


def sections(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted name, section) of every section below a config, nested ones (``train.optim``) too."""
    out = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        # a mapping of sections (prior.plugins) names each one as it is written: prior.<name>
        named = value.items() if isinstance(value, dict) else [(f.name, value)]
        for name, section in named:
            if dataclasses.is_dataclass(section):
                out += [(f"{prefix}{name}", section), *sections(section, f"{prefix}{name}.")]
    return out


def validate_section(name: str, values: Any) -> None:
    """One section's values against its RANGES (``name`` is its key in Config, e.g. "data"), then
    the section's own ``check()`` of what spans several keys, if it has one."""
    for key, spec in getattr(type(values), "RANGES", {}).items():
        value = getattr(values, key)
        items = value if isinstance(value, (list, tuple)) else [value]
        items = [x for item in items for x in (item if isinstance(item, (list, tuple)) else [item])]
        if not all(within(x, spec) for x in items):
            each = " (each item)" if isinstance(value, (list, tuple)) else ""
            raise EmojirayError(f"config key '{name}.{key}' is {value!r}: must be {range_text(spec)}{each}")
    if hasattr(values, "check"):
        values.check()


def _read_preset(preset: str) -> dict[str, Any]:
    path = Path(preset)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        path = PRESET_DIR / f"{preset}.yaml"
    if not path.exists():
        raise EmojirayError(
            f"unknown preset {preset!r}: choose one of {', '.join(available_presets())} or give a YAML file"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise EmojirayError(f"preset {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    except UnicodeDecodeError:
        raise EmojirayError(f"preset {path} is not UTF-8 text") from None
    except OSError as exc:
        raise EmojirayError(f"cannot read preset {path}: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise EmojirayError(f"preset {path} must be a mapping of sections, got {type(data).__name__}")
    return data


def _flatten(mapping: dict[str, Any], prefix: str = "", known_only: bool = False) -> list[tuple[str, Any]]:
    """A preset's nested mapping as (dotted key, value) pairs, walking the mappings of sections;
    ``known_only`` leaves out the keys this version does not know instead of refusing them."""
    pairs = []
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        try:
            typ = _targets(dotted, sections_too=True)[0][1]
        except EmojirayError:
            if known_only:
                continue
            raise
        if isinstance(value, dict) and dataclasses.is_dataclass(typ):
            pairs += _flatten(value, f"{dotted}.", known_only)
        else:
            pairs.append((dotted, value))
    return pairs


def _put(tree: dict[str, Any], key: str, value: Any) -> None:
    """Put one dotted key's value into a tree of sections under its full name (under each name an
    alias stands for)."""
    for canonical, typ, convert in _targets(key):
        *parents, leaf = canonical.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = convert(_read(typ, value, canonical)) if convert else value


def _targets(key: str, cls: type | None = None, sections_too: bool = False) -> list[tuple[str, Any, Any]]:
    """(full dotted name, declared type, value conversion or None) of each field ``key`` sets: one,
    or those an alias (ALIASES) stands for; unless ``sections_too``, a key must name a value."""
    if (cls or Config) is Config and key in ALIASES:
        targets = [(*_resolve(target), convert) for target, convert in ALIASES[key]]
    else:
        targets = [(*_resolve(key, cls), None)]
    if dataclasses.is_dataclass(targets[0][1]) and not sections_too:
        raise EmojirayError(f"config key {key!r} is a section; set one of its fields instead")
    return targets


def _resolve(key: str, cls: type | None = None) -> tuple[str, Any]:
    """The full dotted name of ``key`` and its field's declared type, every part checked against the
    dataclasses; a training section's optimiser keys may leave out ``optim.`` (``train.lr``)."""
    parts: list[str] = []
    typ: Any = cls or Config
    for i, part in enumerate(key.split(".")):
        if not dataclasses.is_dataclass(typ):
            raise EmojirayError(f"config key {key!r}: {'.'.join(key.split('.')[:i])!r} is not a section")
        hints = _hints(typ)
        if part not in hints and "optim" in hints and part in _hints(OptimConfig):
            parts.append("optim")
            hints = _hints(OptimConfig)
        elif part not in hints and typ is PriorConfig and _plugin_settings(part) is not None:
            parts.append("plugins")
            hints = {part: _plugin_settings(part)}
        if part not in hints:
            raise EmojirayError(f"unknown config key {'.'.join(key.split('.')[:i + 1])!r} "
                                f"(known here: {', '.join(hints)})")
        parts.append(part)
        typ = hints[part]
    return ".".join(parts), typ


def _plugin_settings(kind: str) -> type | None:
    """The settings dataclass of a plug-in kind of prior (None for other names)."""
    return getattr(PRIORS[kind], "settings", None) if kind in PRIORS and kind not in _hints(PriorConfig) else None


def _read_plugins(cfg: Config, known_only: bool = False) -> Config:
    """Each plug-in kind's section (``prior.plugins.<name>``, given as a mapping) read by its settings
    dataclass, the keys not given at their defaults; ``known_only`` drops kinds not registered here."""
    plugins = cfg.prior.plugins
    for name in list(plugins):
        settings = _plugin_settings(name)
        if settings is None:
            if known_only:
                del plugins[name]
                continue
            raise EmojirayError(f"unknown config key 'prior.{name}': no registered kind of prior has such a section")
        given = dataclasses.asdict(plugins[name]) if dataclasses.is_dataclass(plugins[name]) else plugins[name]
        plugins[name] = _read(settings, {**dataclasses.asdict(settings()), **(given or {})}, f"prior.{name}")
    return cfg


def _walk(cfg: Any, parts: list[str]) -> Any:
    """Down a config by field names; a plug-in section not yet set starts at its defaults."""
    node = cfg
    for part in parts:
        node = node.setdefault(part, _plugin_settings(part)()) if isinstance(node, dict) else getattr(node, part)
    return node


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in typing.get_type_hints(cls, include_extras=True).items() if k in fields}


@functools.cache
def _adapter(typ: Any) -> TypeAdapter:
    return TypeAdapter(typ)


def _read(typ: Any, value: Any, key: str = "") -> Any:
    """``value`` read as ``typ`` by pydantic (a dataclass from a tree of sections, missing fields at
    their defaults); its first error as one line naming the dotted key, the type and the input."""
    try:
        return _adapter(typ).validate_python(value)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
    for part in loc:  # down the sections to the field, and into a list to the item
        base = _unannotated(typ)
        if isinstance(part, str) and dataclasses.is_dataclass(base) and isinstance(value, dict) and part in value:
            typ, value, key = _hints(base)[part], value[part], f"{key}.{part}" if key else part
        elif isinstance(part, int) and typing.get_origin(base) is list and isinstance(value, list):
            typ, value, key = typing.get_args(base)[0], value[part], f"{key}[{part}]"
        else:
            break
    raise EmojirayError(f"config key {key!r} expects {_type_name(typ)}, got {value!r}")


def _unannotated(typ: Any) -> Any:
    return typing.get_args(typ)[0] if typing.get_origin(typ) is Annotated else typ


def _type_name(typ: Any) -> str:
    """A field's type in words: int, float, bool, str, list of int, mapping."""
    typ = _unannotated(typ)
    if typing.get_origin(typ) is list:
        return f"list of {_type_name(typing.get_args(typ)[0])}"
    if typing.get_origin(typ) is dict:
        return "mapping"
    return getattr(typ, "__name__", str(typ))


def get_value(cfg: Any, key: str) -> Any:
    """The value of one dotted key (``train.lr``) of a config (an alias: its first field's; a section
    key: the section)."""
    return _walk(cfg, _targets(key, type(cfg), sections_too=True)[0][0].split("."))


def set_value(cfg: Any, key: str, value: Any) -> None:
    """Set one dotted key (``data.size``) of a config in place, the value read by the field's type."""
    for canonical, typ, convert in _targets(key, type(cfg)):
        *parents, leaf = canonical.split(".")
        checked = _read(typ, value, canonical)
        setattr(_walk(cfg, parents), leaf, convert(checked) if convert else checked)


def range_of(key: str) -> str | Registry:
    """The RANGES entry of one dotted key (an alias: its first field's)."""
    *parents, leaf = _targets(key)[0][0].split(".")
    return type(_walk(Config(), parents)).RANGES[leaf]


def config_from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a Config from ``Config.to_dict()`` output (e.g. a checkpoint's meta.json).

    Keys this version does not know are ignored, so older checkpoints keep loading.
    """
    tree = Config().to_dict()
    sections_only = {k: v for k, v in (data or {}).items() if isinstance(v, dict)}
    for key, value in _flatten(sections_only, known_only=True):
        _put(tree, key, value)
    return _read_plugins(_read(Config, tree), known_only=True)


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
