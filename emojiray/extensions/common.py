"""What the five extensions share (pure PyTorch + Pillow, no Ray): where a run keeps its models,
reading emoji by file or by name, encoding/decoding, pixel masks as code masks, feature sets.

A pipeline run (`emojiray pipeline --out RUN`) keeps everything an extension needs::

    RUN/data/                               the dataset (names, labels, held-out splits)
    RUN/tokenizer/vqvae/                    the VQ-VAE
    RUN/prior_maskgit/prior/                the MaskGIT prior (conditioned on prior.condition)
    RUN/extensions/classifier/              the emoji classifier (`condition`)
    RUN/extensions/upscaler/                the low-resolution encoder (`upscale`)
    RUN/extensions/prior_maskgit_vendor/prior/     MaskGIT conditioned on the vendor (`restyle`)
    RUN/extensions/prior_maskgit_<label>/prior/    more conditional MaskGIT priors (extensions.extra_conditions)

so every extension command takes ``--run RUN`` and finds its inputs; ``--data``, ``--vqvae``,
``--prior`` … override single paths.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from emojiray import storage
from emojiray.devices import resolve_device
from emojiray.errors import EmojirayError, SkipImage

EXT = "extensions"


@dataclass
class RunPaths:
    """Where a pipeline run keeps the models and data the extensions use."""

    run: str = ""
    data: str = ""
    vqvae: str = ""
    prior: str = ""
    classifier: str = ""
    upscaler: str = ""
    vendor_prior: str = ""
    out: str = ""  # where extension outputs go

    @classmethod
    def of(cls, run: str = "", **overrides: str | None) -> "RunPaths":
        """Paths under ``run`` (a pipeline's --out), each replaced by a given override."""
        base = cls(run=run)
        if run:
            base = cls(run=run, data=storage.join(run, "data"), vqvae=storage.join(run, "tokenizer", "vqvae"),
                       prior=storage.join(run, "prior_maskgit", "prior"),
                       classifier=storage.join(run, EXT, "classifier"),
                       upscaler=storage.join(run, EXT, "upscaler"),
                       vendor_prior=storage.join(run, EXT, "prior_maskgit_vendor", "prior"),
                       out=storage.join(run, EXT))
        for k, v in overrides.items():
            if v:
                setattr(base, k, v)
        return base

    def need(self, *names: str) -> None:
        """One-line error naming the first missing path (a flag, or a run that lacks it)."""
        for name in names:
            value = getattr(self, name)
            flag = "--" + name.replace("_", "-")
            if not value:
                raise EmojirayError(f"no {name.replace('_', ' ')}: give {flag} or --run (a pipeline output)")
            marker = value if name == "out" else storage.join(value, "manifest.json" if name == "data" else "meta.json")
            if name != "out" and not storage.exists(marker):
                hint = f" (run `emojiray pipeline --out {self.run}` first)" if self.run else ""
                raise EmojirayError(f"no {name.replace('_', ' ')} at {value}{hint}")


# -- real emoji -------------------------------------------------------------------------------------

LABEL_COLUMNS = ("key", "emoji_id", "name", "category", "vendor", "emotion", "split")


def read_images(data_uri: str, splits=("val", "test"), columns=LABEL_COLUMNS) -> tuple[np.ndarray, dict[str, list]]:
    """(pixels (N, H, W, 3) uint8, {column: values}) of the given splits, in manifest order."""
    from emojiray.data import shards

    manifest = shards.load_manifest(data_uri)
    pix, labels = [], {c: [] for c in columns}
    for split in splits:
        for table in shards.iter_tables(data_uri, manifest, split, columns=["image", *columns]):
            pix.append(shards.pixels_from_table(table, manifest).copy())
            for c in columns:
                labels[c].extend(table.column(c).to_pylist())
    size = manifest["image"]["height"]
    images = np.concatenate(pix) if pix else np.zeros((0, size, size, 3), np.uint8)
    return images, labels


def _dataset_version(data_uri: str) -> str:
    from emojiray.data import shards

    m = shards.load_manifest(data_uri)
    return str(m.get("fingerprint") or m.get("created"))


@functools.lru_cache(maxsize=1)
def _name_index(data_uri: str, version: str) -> tuple[np.ndarray, dict[str, list]]:
    """Every image of a dataset with its names, read once per dataset version (demos look up several names)."""
    return read_images(data_uri, ("train", "val", "test"), ("name", "unified", "vendor", "skin_tone"))


def load_emoji(spec: str, size: int, data_uri: str = "", vendor: str = "") -> tuple[np.ndarray, str]:
    """One emoji as (size, size, 3) uint8 and a short label, from an image file or by name.

    ``spec`` is a path or URI of an image file (PNG, WebP, ...; transparency composited on white),
    or the name of an emoji in the dataset at ``data_uri`` ("grinning face", case-insensitive; an
    exact name first, then the shortest name containing it) or its code point ("1F600"). ``vendor``
    picks that vendor's drawing when the name matches several.
    """
    from emojiray.images import decode_image

    if storage.is_s3(spec) or storage.exists(spec):
        if storage.is_dir(spec):
            raise EmojirayError(f"{spec} is a directory, not an image file")
        try:
            return decode_image(storage.read_bytes(spec), size).pixels, storage.basename(spec).rsplit(".", 1)[0]
        except SkipImage as exc:
            raise EmojirayError(f"cannot read {spec}: {exc}") from None
    if not data_uri:
        raise EmojirayError(f"{spec!r} is not an image file; to look an emoji up by name give --data or --run")
    images, labels = _name_index(data_uri, _dataset_version(data_uri))
    if images.shape[1] != size:
        raise EmojirayError(f"the dataset at {data_uri} holds {images.shape[1]} px images, the model wants {size} px")
    want = spec.strip().lower()
    names = [str(n).lower() for n in labels["name"]]
    codes = [str(u).lower() for u in labels["unified"]]
    rows = [i for i, (n, u) in enumerate(zip(names, codes)) if want in (n, u)]
    if not rows:
        contains = [i for i, n in enumerate(names) if want in n]
        if contains:
            shortest = min(len(names[i]) for i in contains)
            rows = [i for i in contains if len(names[i]) == shortest]
    if not rows:
        raise EmojirayError(f"no emoji named {spec!r} in {data_uri} (and no such file)")
    rows.sort(key=lambda i: (bool(labels["skin_tone"][i]), i))  # the plain (no skin tone) drawing first
    if vendor:
        picked = [i for i in rows if labels["vendor"][i] == vendor]
        if not picked:
            have = sorted({labels["vendor"][i] for i in rows})
            raise EmojirayError(f"{spec!r} exists only for vendor(s) {', '.join(have)}, not {vendor!r}")
        rows = picked
    i = rows[0]
    return images[i].copy(), f"{labels['name'][i].lower()} ({labels['vendor'][i]})"


# -- tokenizer --------------------------------------------------------------------------------------


@torch.no_grad()
def encode(vqvae, images: np.ndarray, device: torch.device | None = None, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """(N, H, W, 3) uint8 -> {level: (N, h, w) long} codes on ``device``."""
    from emojiray.images import to_model_input

    device = device or next(vqvae.parameters()).device
    parts: dict[str, list] = {}
    for s in range(0, len(images), batch_size):
        x = to_model_input(torch.from_numpy(np.ascontiguousarray(images[s:s + batch_size])), device, channels_last=False)
        for lv, c in vqvae.encode(x).items():
            parts.setdefault(lv, []).append(c)
    return {lv: torch.cat(v) for lv, v in parts.items()}


@torch.no_grad()
def decode(vqvae, codes: dict[str, torch.Tensor], batch_size: int = 256) -> np.ndarray:
    """{level: (N, h, w)} codes -> (N, H, W, 3) uint8 images."""
    from emojiray.images import from_model_output

    n = next(iter(codes.values())).shape[0]
    out = [from_model_output(vqvae.decode_codes({lv: c[s:s + batch_size] for lv, c in codes.items()}).float())
           for s in range(0, n, batch_size)]
    return np.concatenate(out) if out else np.zeros((0,), np.uint8)


def require_mask_filling(sampler, what: str) -> None:
    if not sampler.fills_masks:
        raise EmojirayError(f"{what} re-samples masked codes, which a {sampler.kind} prior cannot do "
                            f"({sampler.prior_uri}): train a MaskGIT prior (--set prior.kind=maskgit)")


def code_masks(pixel_mask: np.ndarray, grids: dict[str, tuple[int, int]]) -> dict[str, torch.Tensor]:
    """(H, W) bool pixel mask -> {level: (h, w) bool}: a code is masked when its cell touches the mask."""
    m = torch.from_numpy(np.asarray(pixel_mask, dtype=np.float32))[None, None]
    H, W = pixel_mask.shape
    out = {}
    for lv, (h, w) in grids.items():
        if H % h or W % w:
            raise EmojirayError(f"a {H}x{W} mask does not tile the {h}x{w} {lv} code grid")
        out[lv] = torch.nn.functional.max_pool2d(m, (H // h, W // w))[0, 0] > 0
    return out


# -- training the helper models (classifier, upscaler) ---------------------------------------------

RUN_DIR = "train"  # in a helper model's folder: its Ray Train run (ray/, tensorboard/, the exported model)


def helper_schedule(section, examples: int, world: int = 1, log_every: int = 50):
    """(Schedule, steps per epoch) of a helper model from its config section (``classifier``,
    ``upscale``): warm-up over a tenth of the steps (at most 100), cosine decay to 5 % of the
    learning rate, gradient clipping at 1, the section's time budget, a validation every epoch."""
    from emojiray.train import harness

    steps = max(1, examples // (section.batch_size * world))
    total = section.epochs * steps
    return harness.Schedule(epochs=section.epochs, batch_size=section.batch_size, lr=section.lr,
                            warmup_steps=min(100, total // 10), min_lr_ratio=0.05, grad_clip=1.0,
                            max_seconds=section.max_seconds, report_every_s=0, log_every=log_every), steps


def check_helper_data(what: str, section, train: int, val: int, data_uri: str) -> None:
    """One-line errors before a helper model's training starts Ray."""
    if section.epochs < 1:
        raise EmojirayError(f"{what}.epochs must be >= 1, got {section.epochs}")
    if train == 0:
        raise EmojirayError(f"the dataset at {data_uri} has no training images")
    if val == 0:
        raise EmojirayError(f"the val split of {data_uri} is empty ({what} selection needs it): set "
                            f"data.val_fraction > 0 and prepare again")


def fit_helper(family_cls, cfg, spec: dict[str, Any], train: dict[str, np.ndarray], val: dict[str, np.ndarray],
               out: str, describe: str = "", log=print) -> dict[str, Any]:
    """Train a helper model's family through the one Ray driver (:func:`emojiray.train.driver.fit`)
    on in-memory arrays (put in Ray's object store once); return the driver's record.

    The run lives in ``<out>/train``: ``ray/<kind>/`` (Ray Train's checkpoints), ``tensorboard/``
    and ``<kind>/`` (the best checkpoint by the family's score); :func:`publish_model` then puts
    that model at ``out`` itself. Every call starts the run over (the pipeline keeps a model whose
    inputs did not change instead)."""
    from emojiray.data.stream import from_arrays
    from emojiray.train.driver import fit

    return fit(family_cls, cfg, spec, lambda: {"train": from_arrays(train), "val": from_arrays(val)},
               storage.join(out, RUN_DIR), force=True, quiet_claim=True, describe=describe, log=log)


def publish_model(model_uri: str, out: str, kind: str, **extra: Any) -> dict[str, Any]:
    """Copy the checkpoint at ``model_uri`` (meta.json + weights) to ``out`` with ``extra`` added to
    its meta; return that meta. Each file is written atomically, the weights first: meta.json,
    which makes ``out`` a model, comes last."""
    from emojiray.models import checkpoint as ckpt

    with ckpt.LocalCopy(model_uri) as d:
        meta = {**ckpt.read_meta(d, kind=kind), **json_safe(extra)}
        weights = (d / ckpt.WEIGHTS).read_bytes()
    storage.write_bytes(storage.join(out, ckpt.WEIGHTS), weights)
    storage.write_json(storage.join(out, ckpt.META), meta)
    return meta


# -- features and sheets ----------------------------------------------------------------------------


def image_scores(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image (PSNR in dB, SSIM) of uint8 NHWC images against their targets."""
    from emojiray.images import to_model_input
    from emojiray.metrics.image import per_image_psnr, per_image_ssim

    a = to_model_input(torch.from_numpy(np.ascontiguousarray(pred)), channels_last=False)
    b = to_model_input(torch.from_numpy(np.ascontiguousarray(target)), channels_last=False)
    return per_image_psnr(a, b).numpy(), per_image_ssim(a, b).numpy()


def inception_features(device=None) -> Callable[[np.ndarray], np.ndarray]:
    """The standard TF-Inception pool3 features (uint8 NHWC -> (N, 2048))."""
    from emojiray.metrics.inception import InceptionFeatures

    return InceptionFeatures(resolve_device(device))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float | None:
    """FID between two feature sets, or None when either has fewer than 2 images."""
    from emojiray.metrics.fid import fid_from_features

    if len(features_a) < 2 or len(features_b) < 2:
        return None
    return float(fid_from_features(features_a, features_b))


def save_gif(uri: str, frames: np.ndarray, ms: int = 120, scale: int = 1) -> str:
    """(T, H, W, 3) uint8 frames -> a looping animated GIF (forwards then backwards)."""
    import io

    from PIL import Image

    imgs = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.Resampling.NEAREST)
            for f in frames]
    seq = imgs + imgs[-2:0:-1]  # ping-pong
    buf = io.BytesIO()
    seq[0].save(buf, format="GIF", save_all=True, append_images=seq[1:], duration=ms, loop=0)
    return storage.write_bytes(uri, buf.getvalue())


def enlarged(sheet):
    """Sheets of small emoji are hard to see: a sheet under 400 px high is enlarged twice (nearest)."""
    from PIL import Image

    if sheet.height < 400:
        return sheet.resize((sheet.width * 2, sheet.height * 2), Image.Resampling.NEAREST)
    return sheet


def write_sheet(uri: str, rows, ncols: int) -> str:
    """Write a sheet of labelled rows [(label, uint8 NHWC images)] as PNG (enlarged when small); return its URI."""
    from emojiray.images import labelled_rows, to_png_bytes

    return storage.write_bytes(uri, to_png_bytes(enlarged(labelled_rows(rows, ncols))))


def require_model(uri: str, what: str, command: str, option: str) -> None:
    """One-line errors for a helper model (classifier, upscaler) that is not given or not there."""
    if not uri:
        raise EmojirayError(f"no {what}: give {option} (from `emojiray {command}`) or --run")
    if not storage.exists(storage.join(uri, "meta.json")):
        raise EmojirayError(f"no {what} at {uri}: train one with `emojiray {command} --out {uri}`")


def json_safe(obj: Any) -> Any:
    """Floats rounded, numpy scalars and arrays made plain, NaN -> None (for metrics JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return None if v != v or v in (float("inf"), float("-inf")) else round(v, 5)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
