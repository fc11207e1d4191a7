"""Inpainting: the codes under a mask are re-sampled by MaskGIT, every other code is kept.

    image ─ VQ-VAE encode ─► codes {top (h_t, w_t), bottom (h_b, w_b)}
    pixel mask (H, W) ─ max-pool to each grid ─► code masks: a code is unknown when its cell touches the mask
    tokens (B, N) with unknown positions = [MASK] ─ MaskGIT.complete (× completions) ─► codes ─ decode ─► x̂
    output = original pixels outside the mask, x̂ inside

The metric (``evaluate_inpaint``): on held-out emoji, a seeded random square box (side
``inpaint.box`` of the image side, at least 11 px so that SSIM's window fits) per image is
hidden; PSNR and SSIM are measured on the box crop against the real pixels for

- ``maskgit``: the mean over ``inpaint.completions`` sampled completions (what a user gets),
- ``maskgit_best``: the best of them per image (an oracle pick: what the samples can reach),
- ``maskgit_greedy``: one completion with temperature 0 (the most likely codes),
- ``naive_fill``: the blurred surroundings (normalised convolution: a Gaussian blur of the known
  pixels divided by the blur of the known-pixel mask, at the smallest of several widths that
  reaches each hidden pixel),
- ``vq_reconstruction``: the tokenizer's reconstruction of the true image (the ceiling of any method
  that works through the codes).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from emojiray import storage
from emojiray.data.shards import read_arrays, seeded_subset
from emojiray.errors import EmojirayError
from emojiray.extensions.codes import code_masks, decode, encode, require_mask_filling
from emojiray.extensions.interface import Extension
from emojiray.extensions.lookup import load_emoji
from emojiray.extensions.measures import image_scores
from emojiray.extensions.paths import RunPaths
from emojiray.extensions.sheets import write_measurement, write_sheet

MIN_BOX = 11  # SSIM's Gaussian window


# -- masks ------------------------------------------------------------------------------------------


def parse_mask(spec: str, size: int) -> np.ndarray:
    """A mask spec -> (size, size) bool, True where the image is to be filled.

    ``box:x0,y0,x1,y1`` in pixels of the model's image size (x1, y1 exclusive), or as fractions of
    the side when the numbers are written with a decimal point (``box:0.25,0.25,0.75,0.75``); or the
    path/URI of a mask image (white/non-zero = fill), resized to the image size.
    """
    if spec.startswith("box:"):
        parts = spec[4:].split(",")
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            vals = []
        if len(vals) != 4:
            raise EmojirayError(f"bad mask {spec!r}: expected box:x0,y0,x1,y1 (pixels, or fractions like 0.25)")
        if any("." in p for p in parts):
            vals = [v * size for v in vals]
        x0, y0, x1, y1 = (int(round(v)) for v in vals)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(size, x1), min(size, y1)
        if x1 <= x0 or y1 <= y0:
            raise EmojirayError(f"mask {spec!r} is empty inside a {size}x{size} image")
        mask = np.zeros((size, size), bool)
        mask[y0:y1, x0:x1] = True
        return mask
    if not storage.exists(spec):
        raise EmojirayError(f"bad mask {spec!r}: give box:x0,y0,x1,y1 or the path of a mask image")
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(storage.read_bytes(spec)))
        if img.mode in ("RGBA", "LA"):  # transparent = keep
            img = img.getchannel("A")
        img = img.convert("L").resize((size, size), Image.Resampling.NEAREST)
    except (UnidentifiedImageError, OSError) as exc:
        raise EmojirayError(f"cannot read mask image {spec}: {str(exc).splitlines()[0]}") from None
    mask = np.asarray(img) > 127
    if not mask.any():
        raise EmojirayError(f"mask image {spec} marks no pixel to fill (white = fill)")
    return mask


def random_boxes(n: int, size: int, share: float, seed: int) -> np.ndarray:
    """(n, size, size) bool masks, each a seeded random square box fully inside the image."""
    side = min(size, max(MIN_BOX, int(round(share * size))))
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), bool)
    for i in range(n):
        y, x = rng.integers(0, size - side + 1, 2)
        masks[i, y:y + side, x:x + side] = True
    return masks


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


# -- methods ----------------------------------------------------------------------------------------


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, C, H, W) -> the same blurred with a separable Gaussian, zero padding."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), padding=(0, radius), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), padding=(radius, 0), groups=c)


def naive_fill(images: np.ndarray, masks: np.ndarray, sigmas=(1.0, 2.0, 4.0, 8.0, 16.0, 32.0)) -> np.ndarray:
    """The baseline: hidden pixels from the blurred surroundings (normalised convolution)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).double()  # (B, 3, H, W)
    known = torch.from_numpy(~masks)[:, None].double()  # (B, 1, H, W)
    out = x * known
    todo = ~known.bool()
    for sigma in sigmas:
        num = _gaussian_blur(x * known, sigma)
        den = _gaussian_blur(known, sigma)
        reach = todo & (den > 1e-3)
        out = torch.where(reach, num / den.clamp(min=1e-12), out)
        todo = todo & ~reach
    if todo.any():  # nothing known anywhere near: the image's mean known colour
        mean = (x * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp(min=1)
        out = torch.where(todo, mean.expand_as(out), out)
    return out.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def composite(original: np.ndarray, filled: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Original pixels outside ``mask`` (H, W) or (N, H, W), ``filled`` inside."""
    return np.where(mask[..., None], filled, original)


@torch.no_grad()
def inpaint(sampler, images: np.ndarray, masks: np.ndarray, completions: int = 4, steps: int = 8,
            temperature: float = 1.0, cond: torch.Tensor | None = None, guidance: float = 1.0,
            generator: torch.Generator | None = None, batch_size: int = 256) -> np.ndarray:
    """(N, H, W, 3) images and (N, H, W) masks -> (N, completions, H, W, 3) composited completions.

    ``sampler`` is a :class:`~emojiray.generate.sampler.Sampler` over a MaskGIT prior; ``cond`` (N,)
    class ids or None (the null class: unconditional).
    """
    require_mask_filling(sampler, "inpainting")
    if images.shape[:3] != masks.shape:
        raise EmojirayError(f"{len(masks)} masks of {masks.shape[1:]} do not match {len(images)} images of "
                            f"{images.shape[1:3]}")
    n, size = len(images), images.shape[1]
    grids = sampler.vqvae.grid_sizes(size)
    layout, model = sampler.layout, sampler.prior
    codes = encode(sampler.vqvae, images, sampler.device)
    tokens = layout.flatten(codes)  # (N, T)
    unknown = torch.stack([_flat_mask(layout, code_masks(mk, grids)) for mk in masks]).to(tokens.device)  # (N, T)
    given = tokens.masked_fill(unknown, model.mask_id)
    given = given.repeat_interleave(completions, 0)  # (N * completions, T)
    c = None if cond is None else cond.to(sampler.device).repeat_interleave(completions, 0)
    out = []
    for s in range(0, len(given), batch_size):
        with sampler._autocast():
            filled = model.complete(given[s:s + batch_size], None if c is None else c[s:s + batch_size], steps=steps,
                                    temperature=temperature, guidance=guidance, generator=generator)
            out.append(decode(sampler.vqvae, layout.unflatten(filled)))
    decoded = np.concatenate(out).reshape(n, completions, *images.shape[1:])
    return composite(images[:, None], decoded, masks[:, None])


def _flat_mask(layout, masks: dict[str, torch.Tensor]) -> torch.Tensor:
    """{level: (h, w) bool} -> (T,) bool in the prior's token order (top first)."""
    return torch.cat([masks[lv].flatten() for lv in layout.levels])


# -- the metric -------------------------------------------------------------------------------------


def _crop_scores(pred: np.ndarray, target: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image (PSNR, SSIM) on the bounding box of each mask (boxes of at least MIN_BOX pixels)."""
    scores = []
    for p, t, m in zip(pred, target, masks):
        y0, y1, x0, x1 = bounding_box(m)
        psnr, ssim = image_scores(p[None, y0:y1, x0:x1], t[None, y0:y1, x0:x1])
        scores.append((float(psnr[0]), float(ssim[0])))
    return np.array([a for a, _ in scores]), np.array([b for _, b in scores])


def evaluate_inpaint(paths: RunPaths, cfg, out: str, log=print) -> dict[str, Any]:
    """Inpaint seeded boxes of held-out emoji; write ``inpaint.json`` and the sheet ``inpaint.png``."""
    from emojiray.generate.sampler import Sampler

    paths.need("data", "prior")
    t0 = time.perf_counter()
    ic, ec = cfg.inpaint, cfg.extensions
    sampler = Sampler(paths.prior, paths.vqvae or None)
    require_mask_filling(sampler, "inpainting")
    images, labels = read_arrays(paths.data, ("val", "test"))
    if not len(images):
        raise EmojirayError(f"{paths.data} has no held-out (val, test) images to inpaint")
    if images.shape[1] != sampler.image_size:
        raise EmojirayError(f"the dataset holds {images.shape[1]} px images, the VQ-VAE {sampler.image_size} px")
    rows = seeded_subset(len(images), ec.eval_images, ec.seed)
    images = images[rows]
    size = images.shape[1]
    masks = random_boxes(len(images), size, ic.box, ec.seed)
    gen = sampler.generator(ec.seed)
    sampled = inpaint(sampler, images, masks, ic.completions, ic.steps, ic.temperature, generator=gen)
    greedy = inpaint(sampler, images, masks, 1, ic.steps, 0.0, generator=gen)[:, 0]
    naive = naive_fill(images, masks)
    recon = decode(sampler.vqvae, encode(sampler.vqvae, images, sampler.device))
    recon = composite(images, recon, masks)

    scores = {}
    per_completion = [_crop_scores(sampled[:, k], images, masks) for k in range(ic.completions)]
    psnr_k = np.stack([p for p, _ in per_completion], 1)  # (N, completions)
    ssim_k = np.stack([s for _, s in per_completion], 1)
    scores["maskgit"] = (psnr_k.mean(1), ssim_k.mean(1))
    best = psnr_k.argmax(1)
    scores["maskgit_best"] = (psnr_k[np.arange(len(best)), best], ssim_k[np.arange(len(best)), best])
    scores["maskgit_greedy"] = _crop_scores(greedy, images, masks)
    scores["naive_fill"] = _crop_scores(naive, images, masks)
    scores["vq_reconstruction"] = _crop_scores(recon, images, masks)
    methods = {k: {"psnr": float(np.nanmean(p)), "ssim": float(np.nanmean(s)),
                   "psnr_std": float(np.nanstd(p)), "ssim_std": float(np.nanstd(s))} for k, (p, s) in scores.items()}
    base = methods["naive_fill"]
    box = int(masks[0].sum() ** 0.5)
    record = {
        "extension": "inpaint", "device": str(sampler.device), "date": dt.date.today().isoformat(),
        "prior": paths.prior, "vqvae": sampler.vqvae_uri, "data": paths.data, "images": len(images),
        "image_size": size, "box_side": box, "completions": ic.completions, "steps": ic.steps,
        "temperature": ic.temperature, "methods": methods,
        "vs_naive_fill": {k: {"psnr_db": m["psnr"] - base["psnr"], "ssim": m["ssim"] - base["ssim"]}
                          for k, m in methods.items() if k != "naive_fill"},
        "note": "PSNR/SSIM on the hidden box only, against the real pixels; maskgit = mean over completions, "
                "maskgit_best = best completion per image (oracle), naive_fill = blurred surroundings",
        "seconds": round(time.perf_counter() - t0, 1),
    }
    show = min(len(images), max(1, ec.examples))
    masked_view = np.where(masks[:show, ..., None], np.uint8(128), images[:show])
    sheet_rows = [("original", images[:show]), ("masked", masked_view), ("naive fill", naive[:show]),
                  ("greedy", greedy[:show])] + [(f"completion {k + 1}", sampled[:show, k]) for k in range(ic.completions)]
    write_measurement(out, "inpaint", record, sheet_rows, show)
    m = methods
    log(f"inpaint: {len(images)} held-out images, {box}px boxes: PSNR in the box maskgit {m['maskgit']['psnr']:.2f} dB "
        f"(best of {ic.completions} {m['maskgit_best']['psnr']:.2f}, greedy {m['maskgit_greedy']['psnr']:.2f}) vs "
        f"naive fill {base['psnr']:.2f} dB; SSIM {m['maskgit']['ssim']:.3f} vs {base['ssim']:.3f} -> {out}")
    return record


def inpaint_files(specs: list[str], mask_spec: str, paths: RunPaths, cfg, out: str, completions: int,
                  condition: str | None = None, seed: int = 0, log=print) -> list[str]:
    """The CLI's demo: each input (file or emoji name) inpainted ``completions`` times.

    Writes ``<stem>_inpainted_<k>.png`` per completion and ``inpaint_<stem>.png`` (original | masked
    | naive fill | completions) under ``out``; returns the sheet URIs.
    """
    from emojiray.data.labels import slug
    from emojiray.generate.sampler import Sampler
    from emojiray.images import to_png_bytes

    paths.need("prior")
    sampler = Sampler(paths.prior, paths.vqvae or None)
    require_mask_filling(sampler, "inpainting")
    size = sampler.image_size
    mask = parse_mask(mask_spec, size)
    cond = None if not condition else torch.tensor([sampler.condition_id(condition)])
    gen = sampler.generator(seed)
    written = []
    for spec in specs:
        image, label = load_emoji(spec, size, paths.data)
        stem = slug(Path(spec).stem if storage.exists(spec) else spec)
        done = inpaint(sampler, image[None], mask[None], completions, cfg.inpaint.steps, cfg.inpaint.temperature,
                       cond=cond, guidance=sampler.cfg.prior.guidance, generator=gen)[0]
        for k, img in enumerate(done):
            storage.write_bytes(storage.join(out, f"{stem}_inpainted_{k + 1}.png"), to_png_bytes(img))
        masked = np.where(mask[..., None], np.uint8(128), image)
        row = np.concatenate([image[None], masked[None], naive_fill(image[None], mask[None]), done])
        written.append(write_sheet(storage.join(out, f"inpaint_{stem}.png"), [(label, row)], len(row)))
        log(f"inpaint: {label}: {completions} completion(s) -> {written[-1]}")
    return written


# -- as the pipeline runs it (emojiray.extensions.interface) ---------------------------------------


DEMO_MASK = "box:0.2,0.5,0.8,0.9"  # the demo hides the lower part of the face


EXTENSION = Extension(evaluate=lambda run: evaluate_inpaint(run.paths, run.cfg, run.out),
                      demo=lambda run, names, log=print: inpaint_files(names[:1], DEMO_MASK, run.paths, run.cfg,
                                                                     run.out, run.cfg.inpaint.completions, log=log),
                      needs=("mask_prior",), headline=("methods", "vs_naive_fill", "images"))
