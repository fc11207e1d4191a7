"""Super-resolution through the VQ-VAE: a low-res emoji -> the full-res codes -> the decoder.

    full-res image (S px) ─ downsample (Pillow bicubic, antialiased) ─► low-res (S / factor px)
    low-res ─ LowResEncoder ─► logits {level: (K, h, w)} ─ argmax ─► codes ─ VQ-VAE decode ─► x̂ (S px)

Training (``train_upscaler``): the targets are the VQ-VAE's codes of the full-resolution train
images (encoded once), the inputs their low-res versions; the loss is the cross-entropy of each
level's codes, summed over the levels. Model selection on val by the PSNR of the decoded codes.
:class:`UpscalerFamily` is the Ray-free part (a :mod:`~emojiray.train.harness` family) and trains
through the one Ray driver (:func:`emojiray.train.driver.fit`) like the tokenizer and the priors;
under ``out``: the model (meta.json, model.safetensors), ``upscaler.json`` and ``train/`` (the Ray
Train run: ray/upscaler/ checkpoints, tensorboard/, upscaler/).

The low-res operator (``downsample``) is fixed and documented, because super-resolution results
only mean something for a known degradation: Pillow's BICUBIC resize, which antialiases when it
shrinks (its kernel is widened by the factor, like MATLAB's ``imresize``, the usual "bicubic
degradation" of super-resolution benchmarks). The baseline (``bicubic``) enlarges those low-res
images back with Pillow's BICUBIC.

The metric (``evaluate_upscale``): on held-out emoji (val + test), PSNR, SSIM and FID against the
real full-res images for the upscaler, bicubic, nearest-neighbour enlargement, and the VQ-VAE
reconstruction of the true image (the ceiling of a method that predicts codes: the true codes). The
ceiling is a ceiling in expectation, not per image: the encoder's nearest codes are not the codes
that minimise pixel error, so other codes can decode closer to an image.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from emojiray import storage
from emojiray.config import Config
from emojiray.data.shards import read_arrays, seeded_subset
from emojiray.devices import resolve_device
from emojiray.errors import EmojirayError
from emojiray.extensions.codes import decode, encode
from emojiray.extensions.helpers import (RUN_DIR, HelperFamily, check_helper_data, fit_helper, load_helper,
                                         publish_model)
from emojiray.extensions.interface import Extension
from emojiray.extensions.lookup import load_emoji
from emojiray.extensions.measures import fid, image_scores, inception_features, json_safe
from emojiray.extensions.paths import RunPaths
from emojiray.extensions.sheets import write_measurement, write_sheet
from emojiray.images import to_model_input
from emojiray.models import checkpoint as ckpt
from emojiray.models.upscaler import LowResEncoder
from emojiray.train.loop_utils import autocast

KIND = "upscaler"
VAL_IMAGES = 512  # val images scored after every training epoch (a seeded subset)


# -- the low-res operator and the baselines ---------------------------------------------------------


def _resize(images: np.ndarray, size: int, resample) -> np.ndarray:
    from PIL import Image

    images = np.asarray(images)
    if not len(images):
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([np.asarray(Image.fromarray(im, "RGB").resize((size, size), resample), np.uint8)
                     for im in images])


def downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, S/factor, S/factor, 3) uint8: Pillow BICUBIC (antialiased when shrinking)."""
    from PIL import Image

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise EmojirayError(f"downsample wants (N, H, W, 3) uint8 images, got shape {images.shape}")
    if factor < 1 or images.shape[1] % factor or images.shape[2] % factor:
        raise EmojirayError(f"upscale.factor {factor} does not divide the image side {images.shape[1]}")
    return _resize(images, images.shape[1] // factor, Image.Resampling.BICUBIC)


def bicubic(lowres: np.ndarray, size: int) -> np.ndarray:
    """The baseline: (N, s, s, 3) uint8 -> (N, size, size, 3) uint8 with Pillow BICUBIC."""
    from PIL import Image

    return _resize(lowres, size, Image.Resampling.BICUBIC)


def nearest(lowres: np.ndarray, size: int) -> np.ndarray:
    """(N, s, s, 3) -> (N, size, size, 3): every pixel repeated (how the low-res input looks enlarged)."""
    f = size // lowres.shape[1]
    return np.repeat(np.repeat(lowres, f, axis=1), f, axis=2)


# -- the model --------------------------------------------------------------------------------------


def vqvae_fingerprint(vqvae) -> str:
    """A short hash of the VQ-VAE's weights: codes only mean something for the tokenizer that made them."""
    h = hashlib.sha256()
    for k, v in sorted(vqvae.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def build_upscaler(vqvae, image_size: int, factor: int, channels: int, res_blocks: int) -> LowResEncoder:
    """The low-res encoder for ``vqvae``'s code grids at ``image_size`` px."""
    if factor < 1 or image_size % factor:
        raise EmojirayError(f"upscale.factor {factor} does not divide the image size {image_size}")
    grids = vqvae.grid_sizes(image_size)
    sizes = {lv: q.K for lv, q in vqvae.quantizers.items()}
    try:
        return LowResEncoder(image_size // factor, grids, sizes, channels=channels, res_blocks=res_blocks)
    except ValueError as exc:
        raise EmojirayError(f"upscale.factor {factor}: {exc}") from None


def code_loss(model: LowResEncoder, x: torch.Tensor, codes: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of each level's codes (mean over cells), summed over the levels."""
    logits = model(x)
    return sum(F.cross_entropy(logits[lv].float(), codes[lv]) for lv in logits)


@torch.no_grad()
def predict_codes(model: LowResEncoder, lowres: np.ndarray, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """(N, s, s, 3) uint8 -> {level: (N, h, w) long} on the model's device."""
    lowres = np.asarray(lowres)
    if lowres.ndim != 4 or lowres.shape[1:] != (model.input_size, model.input_size, 3):
        raise EmojirayError(f"the upscaler takes {model.input_size}x{model.input_size} RGB images, "
                            f"got shape {lowres.shape[1:]}")
    device = next(model.parameters()).device
    parts: dict[str, list[torch.Tensor]] = {lv: [] for lv in model.grids}
    for s in range(0, len(lowres), batch_size):
        x = to_model_input(torch.from_numpy(np.ascontiguousarray(lowres[s:s + batch_size])), device,
                           channels_last=False)
        for lv, c in model.predict_codes(x).items():
            parts[lv].append(c)
    return {lv: torch.cat(v) if v else torch.zeros((0, *model.grids[lv]), dtype=torch.long, device=device)
            for lv, v in parts.items()}


def upscale(model: LowResEncoder, vqvae, lowres: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N, s, s, 3) uint8 low-res -> (N, S, S, 3) uint8: the most likely codes, decoded."""
    codes = predict_codes(model, lowres, batch_size)
    return decode(vqvae, {lv: c.to(next(vqvae.parameters()).device) for lv, c in codes.items()}, batch_size)


def _code_accuracy(pred: dict[str, torch.Tensor], true: dict[str, torch.Tensor]) -> dict[str, float]:
    return {lv: float((pred[lv].cpu() == true[lv].cpu()).float().mean()) for lv in true}


# -- the family (no Ray) ------------------------------------------------------------------------------


class UpscalerFamily(HelperFamily):
    """The low-res encoder as a :mod:`~emojiray.train.harness` family: the code loss (cross-entropy of
    each level's codes, summed), AdamW; the best checkpoint by ``val_psnr`` (the decoded codes).

    ``spec``: {"vqvae" (URI as given, for the meta), "vqvae_path" (absolute: workers may run in another
    directory), "vqvae_fingerprint", "factor", "input_size", "image_size", "grids",
    "codebook_sizes", "examples" (train images), "data"}. Train batches hold ``lowres`` (B, s, s, 3)
    uint8 and each level's target codes (B, h, w); val batches also the full-res ``image``. The
    VQ-VAE is loaded only to evaluate (its decoder draws the predicted codes).
    """

    name = KIND
    score = ("val_psnr", "max")
    batch_key = "upscale.batch_size"  # the config key of the per-worker batch size
    section = "upscale"
    _vqvae = None  # loaded on first use (:attr:`vqvae`)

    def build(self, uc, spec: dict[str, Any]) -> LowResEncoder:
        return LowResEncoder(int(spec["input_size"]), {lv: tuple(g) for lv, g in spec["grids"].items()},
                             spec["codebook_sizes"], channels=uc.channels, res_blocks=uc.res_blocks)

    @property
    def vqvae(self):
        """The tokenizer whose codes the model predicts (loaded on first use; refused if its weights changed)."""
        if self._vqvae is None:
            vqvae, _, _ = ckpt.load_vqvae(self.spec.get("vqvae_path") or self.spec["vqvae"], self.device)
            if vqvae_fingerprint(vqvae) != self.spec["vqvae_fingerprint"]:
                raise EmojirayError(f"the VQ-VAE at {self.spec['vqvae']} changed while the upscaler trained on its codes")
            self._vqvae = vqvae
        return self._vqvae

    def examples(self, batch: dict[str, torch.Tensor]) -> int:
        return batch["lowres"].shape[0]

    def _codes(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {lv: batch[lv].to(self.device).long() for lv in self.model.grids}

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with autocast(self.device, True):
            x = to_model_input(batch["lowres"], self.device, channels_last=False)
            return {"loss": code_loss(self.net, x, self._codes(batch))}

    def evaluate(self, batches) -> tuple[dict[str, float], None]:
        correct = {lv: 0 for lv in self.model.grids}
        cells = {lv: 0 for lv in self.model.grids}
        psnr, ssim = [], []
        for batch in batches:
            x = to_model_input(batch["lowres"], self.device, channels_last=False)
            pred, true = self.model.predict_codes(x), self._codes(batch)
            for lv in correct:
                correct[lv] += int((pred[lv] == true[lv]).sum())
                cells[lv] += true[lv].numel()
            p, s = image_scores(decode(self.vqvae, pred), batch["image"].cpu().numpy())
            psnr.append(p)
            ssim.append(s)
        acc = {lv: correct[lv] / max(cells[lv], 1) for lv in correct}
        return {"val_code_accuracy": float(np.mean(list(acc.values()))),
                **{f"val_{lv}_accuracy": a for lv, a in acc.items()},
                "val_psnr": float(np.concatenate(psnr).mean()) if psnr else math.nan,
                "val_ssim": float(np.concatenate(ssim).mean()) if ssim else math.nan}, None

    def meta(self) -> dict[str, Any]:
        s, uc = self.spec, self.cfg.upscale
        return {"vqvae": s["vqvae"], "vqvae_fingerprint": s["vqvae_fingerprint"], "factor": int(s["factor"]),
                "input_size": int(s["input_size"]), "image_size": int(s["image_size"]),
                "grids": {lv: list(g) for lv, g in s["grids"].items()}, "codebook_sizes": dict(s["codebook_sizes"]),
                "channels": uc.channels, "res_blocks": uc.res_blocks, "data": s.get("data", "")}


# -- training (the one Ray driver) ---------------------------------------------------------------------


def train_upscaler(data_uri: str, vqvae_uri: str, out: str, cfg: Config, force: bool = False,
                   log=print) -> dict[str, Any]:
    """Train the low-res encoder on ``data_uri``'s train split against ``vqvae_uri``'s codes.

    Runs in the driver process: the train images and a seeded subset of val (``VAL_IMAGES``) are
    encoded here with the VQ-VAE (on this process's device), then the family trains through the
    one Ray driver; the Ray Train run lives in ``out/train/`` (see :func:`fit_helper`).
    Writes the model (kind "upscaler": weights, meta with the VQ-VAE URI and fingerprint, the
    factor, sizes and grids, and the val block) to ``out`` and ``out/upscaler.json`` (val code
    accuracy and PSNR of the best epoch, the history); returns that report. An upscaler of another
    dataset or VQ-VAE at ``out`` is replaced only with ``force``.
    """
    uc = cfg.upscale
    device = resolve_device()
    if not storage.exists(storage.join(vqvae_uri, "meta.json")):
        raise EmojirayError(f"no VQ-VAE at {vqvae_uri}")
    vqvae, _, _ = ckpt.load_vqvae(vqvae_uri, device)
    train, _ = read_arrays(data_uri, ("train",), ())
    val, _ = read_arrays(data_uri, ("val",), ())
    check_helper_data("upscale", uc, len(train), len(val), data_uri)
    size = train.shape[1]
    model = build_upscaler(vqvae, size, uc.factor, uc.channels, uc.res_blocks)  # config errors before Ray
    storage.claim_output(out, "upscaler.json", {"data": data_uri, "vqvae": vqvae_uri}, force)
    t0 = time.perf_counter()
    targets = {lv: c.cpu().numpy() for lv, c in encode(vqvae, train, device).items()}  # {level: (N, h, w)}
    arrays = {"lowres": downsample(train, uc.factor), **targets}
    val = val[seeded_subset(len(val), VAL_IMAGES, cfg.extensions.seed)]
    val_arrays = {"image": val, "lowres": downsample(val, uc.factor),
                  **{lv: c.cpu().numpy() for lv, c in encode(vqvae, val, device).items()}}
    fingerprint = vqvae_fingerprint(vqvae)
    log(f"upscaler: {len(train)} train images, {size // uc.factor} -> {size} px, codes of {vqvae_uri} "
        f"({', '.join(f'{lv} {g[0]}x{g[1]}' for lv, g in model.grids.items())}) in {time.perf_counter() - t0:.0f} s")
    del vqvae, train
    spec = {"vqvae": vqvae_uri, "vqvae_path": storage.absolute(vqvae_uri), "vqvae_fingerprint": fingerprint,
            "factor": uc.factor, "input_size": size // uc.factor,
            "image_size": size, "grids": {lv: list(g) for lv, g in model.grids.items()},
            "codebook_sizes": dict(model.codebook_sizes), "examples": len(arrays["lowres"]), "data": data_uri}
    run = fit_helper(UpscalerFamily, cfg, spec, arrays, val_arrays, out, log=log,
                            describe=f"{size // uc.factor} -> {size} px on {spec['examples']} images, "
                                     f"{uc.epochs} epoch(s)")
    seconds = time.perf_counter() - t0
    summary, meta = run["summary"], run["meta"]
    history, best = summary.get("history", []), meta.get("metrics", {})
    report = json_safe({
        "data": data_uri, "vqvae": vqvae_uri, "vqvae_fingerprint": fingerprint,
        "device": "cuda" if run["use_gpu"] else "cpu", "workers": run["workers"],
        "factor": uc.factor, "input_size": size // uc.factor, "output_size": size, "grids": spec["grids"],
        "train_images": spec["examples"], "val_images": len(val), "seconds": seconds,
        "train_seconds": summary.get("train_seconds"), "epochs_run": len(history), "best_epoch": meta["epoch"],
        "val": {"code_accuracy": best.get("val_code_accuracy"), "psnr": best.get("val_psnr"),
                "ssim": best.get("val_ssim"), **{f"{lv}_accuracy": best.get(f"val_{lv}_accuracy") for lv in spec["grids"]}},
        "downsample": "Pillow BICUBIC (antialiased)", "history": history, "run": storage.join(out, RUN_DIR)})
    publish_model(run["model"], out, KIND, val=report["val"])
    storage.write_json(storage.join(out, "upscaler.json"), report)
    v = report["val"]
    log(f"upscaler: {seconds:.0f} s, best epoch {report['best_epoch']}: val code accuracy "
        f"{v['code_accuracy'] if v['code_accuracy'] is not None else float('nan'):.3f}, PSNR "
        f"{v['psnr'] if v['psnr'] is not None else float('nan'):.2f} dB -> {out}")
    return report


def load_upscaler(uri: str, device=None) -> tuple[LowResEncoder, dict[str, Any]]:
    """(model in eval mode on ``device``, checkpoint meta: "vqvae", "vqvae_fingerprint", "factor", sizes)."""
    def build(meta, cfg):
        return LowResEncoder(int(meta["input_size"]), {lv: tuple(g) for lv, g in meta["grids"].items()},
                             meta["codebook_sizes"], channels=int(meta.get("channels", cfg.upscale.channels)),
                             res_blocks=int(meta.get("res_blocks", cfg.upscale.res_blocks)))

    return load_helper(uri, KIND, "train-upscaler", "--upscaler", build, device)


def load_pair(upscaler_uri: str, vqvae_uri: str = "", device=None):
    """(upscaler, VQ-VAE, meta): the VQ-VAE defaults to the upscaler's; another one must be the same
    tokenizer (same weights), since the upscaler predicts codes of the one it was trained on."""
    model, meta = load_upscaler(upscaler_uri, device)
    device = next(model.parameters()).device
    vq_uri = vqvae_uri or meta["vqvae"]
    if not storage.exists(storage.join(vq_uri, "meta.json")):
        raise EmojirayError(f"no VQ-VAE at {vq_uri} (the upscaler's tokenizer); give --vqvae")
    vqvae, _, _ = ckpt.load_vqvae(vq_uri, device)
    if vqvae_fingerprint(vqvae) != meta["vqvae_fingerprint"]:
        raise EmojirayError(f"the upscaler at {upscaler_uri} was trained for the VQ-VAE {meta['vqvae']}, not {vq_uri}: "
                            f"train one for it with `emojiray train-upscaler --vqvae {vq_uri}`")
    return model, vqvae, meta


# -- the metric -------------------------------------------------------------------------------------


def _score(results: dict[str, np.ndarray], images: np.ndarray, features) -> tuple[dict, dict]:
    """(PSNR, SSIM, FID of each method against the real images; each method against bicubic)."""
    real_feats = np.asarray(features(images))
    methods = {}
    for name, imgs in results.items():
        psnr, ssim = image_scores(imgs, images)
        methods[name] = {"psnr": float(psnr.mean()), "ssim": float(ssim.mean()), "psnr_std": float(psnr.std()),
                         "ssim_std": float(ssim.std()), "fid": fid(np.asarray(features(imgs)), real_feats)}
    base, vs = methods["bicubic"], {}
    for name, m in methods.items():
        if name != "bicubic":
            vs[name] = {"psnr_db": m["psnr"] - base["psnr"], "ssim": m["ssim"] - base["ssim"],
                        "ssim_ratio": m["ssim"] / base["ssim"] if base["ssim"] else None,
                        "fid_ratio": m["fid"] / base["fid"] if m["fid"] is not None and base["fid"] else None}
    return methods, vs


def evaluate_upscale(paths: RunPaths, cfg: Config, out: str,
                     features: Callable[[np.ndarray], np.ndarray] | None = None, log=print) -> dict[str, Any]:
    """Upscale held-out emoji (val + test) from their low-res versions; write ``upscale.json`` and
    ``upscale.png`` under ``out``; return the record.

    PSNR and SSIM are per-image means against the real full-res images; FID is between each method's
    images and those real images (``features``: uint8 NHWC -> (N, D); default TF-Inception pool3).
    """
    paths.need("data", "upscaler")
    t0 = time.perf_counter()
    ec = cfg.extensions
    model, vqvae, meta = load_pair(paths.upscaler, paths.vqvae)
    device = next(model.parameters()).device
    images, _ = read_arrays(paths.data, ("val", "test"), ())
    if not len(images):
        raise EmojirayError(f"{paths.data} has no held-out (val, test) images to upscale")
    size, factor = int(meta["image_size"]), int(meta["factor"])
    if images.shape[1] != size:
        raise EmojirayError(f"the dataset holds {images.shape[1]} px images, the upscaler makes {size} px")
    images = images[seeded_subset(len(images), ec.eval_images, ec.seed)]
    low = downsample(images, factor)
    true_codes = encode(vqvae, images, device)
    pred_codes = predict_codes(model, low)
    results = {
        "upscaler": decode(vqvae, pred_codes),
        "bicubic": bicubic(low, size),
        "nearest": nearest(low, size),
        "vq_reconstruction": decode(vqvae, true_codes),
    }
    methods, vs = _score(results, images, features or inception_features(device))
    methods["upscaler"]["code_accuracy"] = _code_accuracy(pred_codes, true_codes)
    base = methods["bicubic"]
    record = {
        "extension": "upscale", "device": str(device), "date": dt.date.today().isoformat(),
        "upscaler": paths.upscaler, "vqvae": meta["vqvae"] if not paths.vqvae else paths.vqvae, "data": paths.data,
        "images": len(images), "input_size": size // factor, "output_size": size, "factor": factor,
        "downsample": "Pillow BICUBIC (antialiased)", "methods": methods, "vs_bicubic": vs,
        "note": "PSNR/SSIM: per-image means against the real full-res held-out images; FID: each method's images vs "
                "those real images (few images: a biased, noisy estimate, for ranking); vq_reconstruction decodes the "
                "true codes (the ceiling of code prediction, in expectation); fid_ratio < 1 beats bicubic",
        "seconds": round(time.perf_counter() - t0, 1),
    }
    show = min(len(images), max(1, ec.examples))
    rows = [(f"low-res {size // factor}px", results["nearest"][:show]), ("bicubic", results["bicubic"][:show]),
            ("upscaler", results["upscaler"][:show]), ("VQ ceiling", results["vq_reconstruction"][:show]),
            ("original", images[:show])]
    write_measurement(out, "upscale", record, rows, show)
    up, ceiling = methods["upscaler"], methods["vq_reconstruction"]
    log(f"upscale: {len(images)} held-out images {size // factor} -> {size} px: PSNR upscaler {up['psnr']:.2f} "
        f"dB vs bicubic {base['psnr']:.2f} (VQ ceiling {ceiling['psnr']:.2f}); SSIM "
        f"{up['ssim']:.3f} vs {base['ssim']:.3f}; FID {_fmt(up['fid'])} vs {_fmt(base['fid'])} -> {out}")
    return record


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


# -- the CLI demo -----------------------------------------------------------------------------------


def upscale_files(specs: list[str], paths: RunPaths, out: str, log=print) -> list[str]:
    """Upscale each input (image file or emoji name); an input larger than the low-res size is first
    downsampled to it (Pillow bicubic, as in training), so a full-size emoji shows what the
    upscaler recovers from its low-res version.

    Writes ``<stem>_upscaled.png`` and the side-by-side ``upscale_<stem>.png`` (low-res enlarged |
    bicubic | upscaler) under ``out``; returns the side-by-side URIs.
    """
    from emojiray.data.labels import slug
    from emojiray.images import to_png_bytes

    paths.need("upscaler")
    model, vqvae, meta = load_pair(paths.upscaler, paths.vqvae)
    size, low = int(meta["image_size"]), int(meta["input_size"])
    written = []
    for spec in specs:
        is_file = storage.is_s3(spec) or storage.exists(spec)
        if is_file:
            native = _native_size(spec)
            image, label = load_emoji(spec, max(native, low), paths.data)
            lowres = image[None] if image.shape[0] == low else _shrink(image, low)
        else:  # a dataset emoji: its full-size drawing, shrunk
            image, label = load_emoji(spec, size, paths.data)
            lowres = downsample(image[None], size // low)
        stem = slug(Path(spec).stem if is_file else spec)
        up = upscale(model, vqvae, lowres)
        storage.write_bytes(storage.join(out, f"{stem}_upscaled.png"), to_png_bytes(up[0]))
        row = np.concatenate([nearest(lowres, size), bicubic(lowres, size), up])
        written.append(write_sheet(storage.join(out, f"upscale_{stem}.png"), [(label, row)], len(row)))
        log(f"upscale: {label}: {low} -> {size} px -> {written[-1]}")
    return written


def _native_size(spec: str) -> int:
    """The longer side of an image file (0 when Pillow cannot read its header: load_emoji says why)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        return max(Image.open(io.BytesIO(storage.read_bytes(spec))).size)
    except (UnidentifiedImageError, OSError, ValueError):
        return 0


def _shrink(image: np.ndarray, side: int) -> np.ndarray:
    """(H, H, 3) -> (1, side, side, 3) with Pillow BICUBIC (the training operator, any ratio)."""
    from PIL import Image

    return _resize(image[None], side, Image.Resampling.BICUBIC)


# -- as the pipeline runs it (emojiray.extensions.interface) ---------------------------------------


EXTENSION = Extension(evaluate=lambda run: evaluate_upscale(run.paths, run.cfg, run.out),
                      demo=lambda run, names, log=print: upscale_files(names[:1], run.paths, run.out, log=log),
                      needs=("upscaler",), headline=("methods", "vs_bicubic", "images"))
