"""One typed configuration: dataclasses, YAML presets and ``--set key=value`` overrides.

A value keeps one dotted name from the YAML preset to the module that reads it
(``data.size`` is ``Config.data.size`` is ``DataConfig.size``). Precedence, lowest first:
dataclass defaults, the preset (``emojiray/presets/<name>.yaml`` or a path to a YAML file),
then ``--set`` overrides in the order given.

Each section documents the range of its values in ``RANGES`` (``"> 0"``, ``">= 1"``, ``"[0, 1)"``,
``"{vq, fsq}"``; a list value's range holds for each item). :func:`load_config` checks them all,
so a bad value is one line naming the key, the value and the range before any work or Ray starts.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from emojiray.errors import EmojirayError
from emojiray.registry import EXTENSIONS, PRIORS, Registry

PRESET_DIR = Path(__file__).parent / "presets"

# The names a choice setting takes, each list written once (the modules that implement them import it).
# Kinds of prior and extensions are plug-ins: their names come from the registries (emojiray/registry.py).
TOKENIZER_ARCHS = ("vqvae2", "vqvae")
QUANTIZERS = ("vq", "fsq")
LABELS = ("emotion", "category", "vendor")  # the per-image labels a prior or the classifier learns
CONDITIONS = ("none", *LABELS)
CODE_LEVELS = ("bottom", "top")
EVAL_SPLITS = ("train", "val", "test", "heldout")  # heldout = val + test


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
    source: str = "npm:google,twitter"
    npm_version: str = "16.0.0"  # version of the emoji-datasource-<vendor> npm packages
    size: int = 64  # output side in pixels (square, RGB)
    background: str = "white"  # colour that transparent pixels are composited onto
    val_fraction: float = 0.05  # share of emoji identities held out for validation
    test_fraction: float = 0.05  # share of emoji identities held out for test
    seed: int = 0  # split seed: the same seed always puts an emoji in the same split
    shard_rows: int = 2048  # rows per Parquet shard
    dedupe: bool = True  # drop exact duplicate images (after preprocessing)
    max_pixels: int = 40_000_000  # larger inputs are refused as decompression bombs
    limit: int = 0  # keep only the first N inputs (0 = all), for quick experiments
    labels_csv: str = ""  # folder source: CSV with a `file` column and label columns
    hf_split: str = "train"  # hf source: which split to read
    hf_image_column: str = ""  # hf source: image column (default: the first Image feature)
    hf_text_column: str = ""  # hf source: text/name column (default: `text` or first string)

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

    address: str = ""  # "" = RAY_ADDRESS if set, else start a local Ray
    num_cpus: int = 0  # local Ray only; 0 = all cores of this machine
    num_gpus: int = -1  # local Ray only; -1 = detect
    num_workers: int = 0  # training workers; 0 = one per GPU, or as many CPUs as are left
    data_cpus: int = -1  # CPUs kept free for Ray Data beside training workers (-1 = auto: none when CPU
    # workers train from a materialised dataset, else 1)
    use_gpu: bool = True  # train on GPUs when the cluster has them
    batch_size: int = 256  # images per batch when streaming shards
    cache_data: bool = True  # materialise decoded images in the object store once (small datasets)
    # a training worker keeps its share of the train split in its own memory when the share is under
    # this many MiB: read through Ray Data once, no Ray Data iteration per epoch (0 = stream every epoch)
    worker_cache_mb: int = 1024

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "num_cpus": ">= 0", "num_gpus": ">= -1", "num_workers": ">= 0", "data_cpus": ">= -1", "batch_size": ">= 1",
        "worker_cache_mb": ">= 0"
    }


@dataclass
class ModelConfig:
    """The VQ-VAE tokenizer. Per-level lists are ordered [bottom, top] (flat uses only bottom)."""

    arch: str = "vqvae2"  # vqvae2 (top + bottom codes) | vqvae (one code grid)
    channels: int = 128  # hidden channels of encoders/decoders
    res_blocks: int = 2  # residual blocks per encoder/decoder
    res_channels: int = 32  # channels inside a residual block
    up_blocks: int = 0  # decoder residual blocks at each upsampled resolution (0 = the paper's decoder)
    downsample: list[int] = field(default_factory=lambda: [4, 2])  # image->bottom, bottom->top
    quantizer: str = "vq"  # vq (a learned codebook) | fsq (finite scalar quantisation: no codebook)
    codebook_size: list[int] = field(default_factory=lambda: [512, 512])  # K per level (vq)
    # fsq: values per channel, one list per level; K = their product (e.g. [8, 5, 5, 5] = 1000 codes)
    fsq_levels: list[list[int]] = field(default_factory=lambda: [[8, 5, 5, 5], [8, 5, 5, 5]])
    code_dim: list[int] = field(default_factory=lambda: [64, 64])  # channels at each quantizer
    lookup_dim: int = 0  # 0 = code_dim; smaller = low-dimensional codebook lookup
    l2_normalize: bool = False  # cosine-similarity codebooks
    beta: float = 0.25  # commitment weight
    ema: bool = True  # EMA codebook updates (else learned by gradient)
    ema_decay: float = 0.99
    kmeans_init: bool = True  # initialise codebooks by k-means on the first batch
    dead_code_steps: int = 100  # re-seed a code unused for this many steps (0 = never)
    rotation_trick: bool = False  # vq: the rotation trick's gradient instead of straight-through

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "arch": one_of(TOKENIZER_ARCHS), "channels": ">= 1", "res_blocks": ">= 0", "res_channels": ">= 1",
        "up_blocks": ">= 0", "downsample": ">= 2", "quantizer": one_of(QUANTIZERS), "codebook_size": ">= 2",
        "fsq_levels": ">= 2", "code_dim": ">= 1", "lookup_dim": ">= 0", "beta": ">= 0", "ema_decay": "[0, 1)",
        "dead_code_steps": ">= 0"
    }


@dataclass
class TrainConfig:
    """A training run (VQ-VAE here; priors reuse the optimisation fields)."""

    epochs: int = 10
    max_seconds: float = 0.0  # stop after this much training time (0 = no limit)
    batch_size: int = 128  # per worker
    lr: float = 3e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    warmup_steps: int = 200
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # 0 = off
    # bf16 autocast on GPU, and for training steps on a CPU with native bf16 (AVX512-BF16/AMX): on such a
    # 2-core CPU the tokenizer trains 1.24-1.60x the images/s with a better PSNR after the same time
    # (results/bench/cpu_bf16.md), a prior 1.2-1.6x (results/cpu/prior_step_cost.txt) with 4.43 instead of
    # 4.59 val bits/code after 600 s (results/cpu/prior_recipes.md); priors validate in fp32 on CPU
    bf16: bool = True
    channels_last: bool = True
    compile: bool = False  # torch.compile the model
    seed: int = 0
    max_failures: int = 2  # worker failures recovered from the last checkpoint
    # validate, checkpoint and draw a grid after this much training time, inside an epoch if need be,
    # and at the end (0 = after every epoch); each report costs a validation pass and a checkpoint
    report_every_s: float = 60.0
    log_every: int = 50  # steps between TensorBoard scalars
    image_every: int = 1  # reports between TensorBoard image grids (0 = never)
    eval_batches: int = 0  # validation batches per epoch (0 = the whole split)
    # The tokenizer's adversarial loss (VQGAN): a patch discriminator (emojiray/models/discriminator.py)
    # learns to tell reconstructions from originals, and the decoder is trained to fool it as well
    adv_weight: float = 0.0  # weight of the decoder's adversarial loss (0 = off: MSE + commitment only)
    adv_start_step: int = 0  # training step from which the discriminator and the adversarial loss run
    adv_adaptive: bool = True  # scale the adversarial gradient to the reconstruction's (times adv_weight)
    disc_channels: int = 64  # the discriminator's first conv (doubling per layer, at most 8x)
    disc_layers: int = 3  # strided 4x4 convs: 32 px -> a 4x4 grid of patch logits
    disc_lr: float = 0.0  # the discriminator's learning rate (0 = train.lr), constant, Adam betas (0.5, 0.9)

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "epochs": ">= 1", "max_seconds": ">= 0", "batch_size": ">= 1", "lr": "> 0", "weight_decay": ">= 0",
        "betas": "[0, 1)", "warmup_steps": ">= 0", "min_lr_ratio": "[0, 1]", "grad_clip": ">= 0", "seed": ">= 0",
        "max_failures": ">= 0", "report_every_s": ">= 0", "log_every": ">= 1", "image_every": ">= 0",
        "eval_batches": ">= 0", "adv_weight": ">= 0", "adv_start_step": ">= 0", "disc_channels": ">= 1",
        "disc_layers": ">= 1", "disc_lr": ">= 0"
    }


@dataclass
class PriorConfig:
    """A prior over VQ codes (`emojiray train-prior`) and how it samples."""

    kind: str = "transformer"  # a name in emojiray.registry.PRIORS: pixelsnail | transformer | maskgit
    condition: str = "none"  # none | emotion | category | vendor
    cond_dropout: float = 0.1  # share of training examples seen without their condition (for CFG)
    mirror: bool = False  # extract-codes adds the codes of the training images flipped left to right
    dim: int = 256  # transformer width
    layers: int = 8
    heads: int = 8
    dropout: float = 0.1
    channels: int = 128  # PixelSNAIL channels
    blocks: int = 4  # PixelSNAIL blocks (gated residual stack + attention)
    res_per_block: int = 2
    maskgit_steps: int = 12  # parallel decoding steps
    # MaskGIT's choice temperature: Gumbel noise of this scale on the confidences that pick which
    # predictions to keep, annealed linearly to 0 over the steps (Chang et al. 2022 use 4.5)
    choice_temperature: float = 4.5
    # label smoothing of MaskGIT's training loss (Chang et al. 2022 use 0.1); the AR priors (transformer,
    # pixelsnail) train on the plain likelihood they are measured by; validation NLL is always plain
    label_smoothing: float = 0.1
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    guidance: float = 1.0  # classifier-free guidance scale (1 = plain conditional)
    epochs: int = 20
    max_seconds: float = 0.0  # stop after this much training time (0 = no limit)
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    sheet_samples: int = 32  # samples in the sheet written after training

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "kind": PRIORS, "condition": one_of(CONDITIONS), "cond_dropout": "[0, 1)", "dim": ">= 1",
        "layers": ">= 1", "heads": ">= 1", "dropout": "[0, 1)", "channels": ">= 1", "blocks": ">= 1",
        "res_per_block": ">= 1", "maskgit_steps": ">= 1", "choice_temperature": ">= 0", "label_smoothing": "[0, 1)",
        "temperature": ">= 0", "top_k": ">= 0", "top_p": "(0, 1]", "guidance": ">= 0", "epochs": ">= 1",
        "max_seconds": ">= 0", "batch_size": ">= 1", "lr": "> 0", "weight_decay": ">= 0", "warmup_steps": ">= 0",
        "sheet_samples": ">= 0"
    }


@dataclass
class EvalConfig:
    """Measuring a trained tokenizer (`emojiray eval-vqvae`)."""

    split: str = "test"  # held-out split to measure on
    fid_images: int = 0  # images used for rFID (0 = the whole split; fewer = quicker, noisier)
    batch_size: int = 256
    # `emojiray eval-samples`
    real_images: int = 0  # real images per split with Inception features (0 = all; a seeded subset)
    memorization_quantile: float = 0.01  # near-copy threshold: this quantile of held-out->train distances
    min_condition_images: int = 20  # per-condition FID only where both sets have this many images
    kid_subsets: int = 100
    pr_k: int = 3  # k of the k-NN manifolds of precision/recall
    actors: int = 0  # feature actors (0 = one per GPU, or one per 2 free CPUs, 2 threads each)

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "split": one_of(EVAL_SPLITS), "fid_images": ">= 0", "batch_size": ">= 1", "real_images": ">= 0",
        "memorization_quantile": "(0, 1)", "min_condition_images": ">= 2", "kid_subsets": ">= 1", "pr_k": ">= 1",
        "actors": ">= 0"
    }


@dataclass
class SampleConfig:
    """Batch generation with a Ray actor pool (`emojiray sample`)."""

    n: int = 2000  # samples per run (the pipeline's run per prior)
    batch_size: int = 256  # samples generated per forward batch in an actor
    shard_size: int = 1000  # samples per Parquet shard: the unit of work, resumption and seeding
    seed: int = 0
    png: bool = True  # also write one PNG per sample
    actors: int = 0  # 0 = one per GPU, or one per CPU left after ray.data_cpus

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

    trials: int = 48
    max_concurrent: int = 0  # trials at once (0 = as many as the resources allow)
    gpus_per_trial: float = 0.25  # fractional GPUs: several trials share one GPU (ignored without GPUs)
    cpus_per_trial: int = 1  # CPUs of each trial's training worker
    grace_period: int = 1  # ASHA: epochs every trial gets before it can be stopped
    reduction_factor: int = 3  # ASHA: keep the best 1/reduction_factor at each rung
    fid_images: int = 0  # held-out images for each finished trial's rFID (0 = all; -1 = no rFID)
    seed: int = 0  # Optuna's TPE sampler seed
    budgets: list[float] = field(default_factory=list)  # rate budgets (bits/image) for presets ([] = auto)
    # dotted config key -> {type: loguniform|uniform|loguniform_int|int|choice, low, high | values}
    space: dict[str, Any] = field(default_factory=_default_space)

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "trials": ">= 1", "max_concurrent": ">= 0", "gpus_per_trial": "> 0", "cpus_per_trial": ">= 1",
        "grace_period": ">= 1", "reduction_factor": ">= 2", "fid_images": ">= -1", "seed": ">= 0", "budgets": "> 0"
    }


@dataclass
class ExtensionsConfig:
    """What the five extensions share, and which of them `emojiray pipeline` runs."""

    run: list[str] = field(default_factory=lambda: ["interpolate", "condition", "restyle", "upscale", "inpaint"])
    prior: str = "maskgit"  # the pipeline prior the extensions re-sample codes with (MaskGIT fills any mask)
    eval_images: int = 0  # held-out images (or pairs) each extension's metric uses (0 = all; a seeded subset)
    examples: int = 8  # held-out examples (columns) on each metric sheet
    seed: int = 0
    condition_samples: int = 64  # samples per condition value for the condition sheets and metrics
    extra_conditions: list[str] = field(default_factory=lambda: ["category"])  # more MaskGIT priors for sheets
    demo: list[str] = field(default_factory=lambda: ["grinning face", "crying face"])  # emoji of the demo sheets

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "run": EXTENSIONS, "prior": PRIORS, "eval_images": ">= 0", "examples": ">= 1",
        "seed": ">= 0", "condition_samples": ">= 1", "extra_conditions": one_of(LABELS)
    }


@dataclass
class ClassifierConfig:
    """The emoji classifier (pure PyTorch CNN, one head per label) behind agreement and Inception Score."""

    labels: list[str] = field(default_factory=lambda: ["emotion", "category", "vendor"])
    channels: int = 64
    epochs: int = 30
    max_seconds: float = 0.0  # stop after this much training time (0 = no limit)
    batch_size: int = 128
    lr: float = 2.0e-3
    weight_decay: float = 1.0e-4
    is_splits: int = 10  # Inception Score splits (fewer when a set is small)

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "labels": one_of(LABELS), "channels": ">= 1", "epochs": ">= 1", "max_seconds": ">= 0", "batch_size": ">= 1",
        "lr": "> 0", "weight_decay": ">= 0", "is_splits": ">= 1"
    }


@dataclass
class InterpolateConfig:
    """`emojiray interpolate A B`: latent and prior paths between two emoji."""

    steps: int = 10  # frames after the first (steps + 1 frames in all)
    remask: float = 0.3  # share of codes MaskGIT re-samples at the middle step (tapered by 4t(1-t) to the ends)
    gif_ms: int = 120  # frame duration of the animated GIF

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "steps": ">= 1", "remask": "[0, 1]", "gif_ms": ">= 1"
    }


@dataclass
class RestyleConfig:
    """`emojiray restyle --to VENDOR FILE`: re-sample a share of the codes under a vendor-conditioned prior."""

    share: float = 0.0  # share of codes re-sampled (0 = the share chosen on the validation split)
    shares: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75])  # candidates for that choice
    guidance: float = 2.0
    steps: int = 8  # MaskGIT decoding steps
    levels: list[str] = field(default_factory=list)  # code levels that may change ([] = all; e.g. [bottom])

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "share": "[0, 1]", "shares": "(0, 1]", "guidance": ">= 0", "steps": ">= 1", "levels": one_of(CODE_LEVELS)
    }


@dataclass
class UpscaleConfig:
    """`emojiray upscale FILE`: a low-resolution encoder into the tokenizer's codes (super-resolution)."""

    factor: int = 2  # input side = data.size / factor (32 -> 64 at the default size)
    channels: int = 128
    res_blocks: int = 4
    epochs: int = 30
    max_seconds: float = 0.0
    batch_size: int = 128
    lr: float = 1.0e-3
    weight_decay: float = 1.0e-4

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "factor": ">= 2", "channels": ">= 1", "res_blocks": ">= 0", "epochs": ">= 1", "max_seconds": ">= 0",
        "batch_size": ">= 1", "lr": "> 0", "weight_decay": ">= 0"
    }


@dataclass
class InpaintConfig:
    """`emojiray inpaint FILE --mask ...`: MaskGIT re-samples the codes under a mask."""

    completions: int = 4  # completions per input
    box: float = 0.4  # side of the random evaluation boxes, as a share of the image side
    steps: int = 8  # MaskGIT decoding steps
    temperature: float = 1.0

    RANGES: ClassVar[dict[str, str]] = {  # allowed values (see validate)
        "completions": ">= 1", "box": "(0, 1)", "steps": ">= 1", "temperature": ">= 0"
    }


@dataclass
class PipelineConfig:
    """Which optional stages `emojiray pipeline` runs."""

    priors: list[str] = field(default_factory=lambda: ["pixelsnail", "transformer", "maskgit"])
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
    every value is checked against its documented range (:func:`validate`)."""
    cfg = Config()
    if preset:
        _apply_mapping(cfg, _read_preset(preset), prefix="")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise EmojirayError(f"bad override {item!r}: expected key=value, e.g. data.size=32")
        set_value(cfg, key.strip(), _parse_scalar(raw), raw=raw.strip())
    return validate(cfg)


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
    for section in dataclasses.fields(cfg):
        validate_section(section.name, getattr(cfg, section.name))
    return cfg


def validate_section(name: str, values: Any) -> None:
    """One section's values against its RANGES (``name`` is its key in Config, e.g. "data"), then
    the section's own ``check()`` of what spans several keys, if it has one."""
    for key, spec in type(values).RANGES.items():
        value = getattr(values, key)
        items = value if isinstance(value, (list, tuple)) else [value]
        items = [x for item in items for x in (item if isinstance(item, (list, tuple)) else [item])]
        if not all(within(x, spec) for x in items):
            each = " (each item)" if isinstance(value, (list, tuple)) else ""
            raise EmojirayError(f"config key '{name}.{key}' is {value!r}: must be {range_text(spec)}{each}")
    if hasattr(values, "check"):
        values.check()


def _parse_scalar(raw: str) -> Any:
    if not raw.strip():
        return ""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw.strip()


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


def _apply_mapping(obj: Any, mapping: dict[str, Any], prefix: str) -> None:
    for key, value in mapping.items():
        key = str(key)
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dataclasses.is_dataclass(_get_field(obj, key, dotted)):
            _apply_mapping(getattr(obj, key), value, prefix=f"{dotted}.")
        else:
            set_value(obj, key, value, full_key=dotted)


def _get_field(obj: Any, name: str, dotted: str) -> Any:
    names = [f.name for f in dataclasses.fields(obj)]
    if name not in names:
        raise EmojirayError(f"unknown config key {dotted!r} (known here: {', '.join(names)})")
    return getattr(obj, name)


def set_value(cfg: Any, key: str, value: Any, full_key: str | None = None, raw: str | None = None) -> None:
    """Set a dotted key (``data.size``) on a config, converting the value to the field's type.

    ``raw`` is the text of a command-line override: string fields take it verbatim, so that
    ``data.npm_version=15.10`` stays "15.10" rather than YAML's float 15.1.
    """
    full_key = full_key or key
    *parents, leaf = key.split(".")
    obj = cfg
    walked = ""
    for part in parents:
        walked = f"{walked}{part}"
        obj = _get_field(obj, part, walked)
        walked += "."
        if not dataclasses.is_dataclass(obj):
            raise EmojirayError(f"config key {full_key!r}: {walked[:-1]!r} is not a section")
    current = _get_field(obj, leaf, full_key)
    if dataclasses.is_dataclass(current):
        raise EmojirayError(f"config key {full_key!r} is a section; set one of its fields instead")
    hints = typing.get_type_hints(type(obj))
    if hints[leaf] is str and raw is not None:
        value = raw
    setattr(obj, leaf, _coerce(value, hints[leaf], full_key))


def _coerce(value: Any, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(typ) or (str,)
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise EmojirayError(f"config key {key!r} expects a list, got {value!r}")
        out = [_coerce(v.strip() if isinstance(v, str) else v, inner, key) for v in items if v != ""]
        return tuple(out) if origin is tuple else out
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ is str:
            return "" if value is None else str(value)
    except (TypeError, ValueError):
        raise EmojirayError(
            f"config key {key!r} expects {getattr(typ, '__name__', typ)}, got {value!r}"
        ) from None
    return value


def config_from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a Config from ``Config.to_dict()`` output (e.g. a checkpoint's meta.json).

    Keys this version does not know are ignored, so older checkpoints keep loading.
    """
    cfg = Config()
    for section, values in (data or {}).items():
        if not hasattr(cfg, section) or not isinstance(values, dict):
            continue
        sub = getattr(cfg, section)
        known = {f.name for f in dataclasses.fields(sub)}
        for key, value in values.items():
            if key in known:
                set_value(sub, key, value, full_key=f"{section}.{key}")
    return cfg


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
