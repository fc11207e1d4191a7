"""Interpolation between two emoji, three ways, and how smooth each path is.

    pixels:  x_t = (1 - t) A + t B                                  (cross-fading, the baseline)
    latent:  z_t = (1 - t) E(A) + t E(B)   per VQ-VAE level (continuous pre-quantisation latents)
             ─ nearest codes per level ─ decode ─► x_t
    prior:   codes c_t,i = B_i if u_i < t else A_i    (u_i ~ U[0, 1) once per code position: monotone)
             a ``remask`` share of the positions ─► [MASK] ─ MaskGIT.complete ─ decode ─► x_t

with t = k / steps, k = 0 … steps (steps + 1 frames). The latent path starts and ends at the VQ
reconstructions of A and B; the prior path at exactly A's and B's codes (nothing re-sampled there).

Which positions the prior re-samples: only positions where A's and B's codes differ (elsewhere the
mixed map is already what both agree on), boundary positions first — a position is on the boundary
when one of its 4-neighbours in the same level's grid took its code from the other emoji, i.e.
where the collage has seams — then the other differing positions; within each group in the order
of one fixed random priority per position. Up to ``round(remask · N)`` positions (N codes in all),
scaled by 4t(1 - t) so the re-sampling fades out towards both endpoints (an exact endpoint next to
a heavily re-sampled frame would be the biggest step of the path). Every step's re-sampling uses
the same random numbers (common random numbers: one seed drawn from the generator): similar mixed
maps then get similar fills, instead of independent noise from frame to frame.

The metric (``smoothness``): perceptual step sizes d_i = ||f(x_i) − f(x_{i+1})||₂ between
consecutive frames (f = Inception pool3 features by default). A smooth path takes even steps, so
the headline is ``step_variance`` = Var(d / mean(d)) (population variance of the steps divided by
their mean, the squared coefficient of variation: free of the feature scale and of the number of
steps); 0 = perfectly even, a path with one jump of the whole distance among k steps scores k − 1.
Also reported: the path length Σ d_i, the max step, and the detour (path length / ||f(x_0) − f(x_T)||).
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emojiray import storage
from emojiray.data.shards import read_arrays
from emojiray.devices import resolve_device
from emojiray.errors import EmojirayError
from emojiray.extensions.codes import decode, encode, require_mask_filling
from emojiray.extensions.interface import Extension, ExtensionRun
from emojiray.extensions.lookup import load_emoji
from emojiray.extensions.measures import inception_features
from emojiray.extensions.paths import RunPaths
from emojiray.extensions.sheets import save_gif, write_measurement, write_sheet

METHODS = ("crossfade", "latent", "prior")
ROW_LABELS = {"crossfade": "pixel crossfade", "latent": "latent (VQ-VAE)", "prior": "prior (MaskGIT)"}


def _ts(steps: int) -> list[float]:
    if steps < 1:
        raise EmojirayError(f"interpolation needs steps >= 1, got {steps}")
    return [k / steps for k in range(steps + 1)]


# -- the three paths --------------------------------------------------------------------------------


def crossfade(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """(H, W, 3) uint8 A and B -> (steps + 1, H, W, 3) uint8 pixel blends (1 - t) A + t B, rounded."""
    t = np.asarray(_ts(steps), np.float64)[:, None, None, None]
    return np.rint((1 - t) * a.astype(np.float64) + t * b.astype(np.float64)).astype(np.uint8)


@torch.no_grad()
def latent_path(vqvae, a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """(H, W, 3) uint8 A and B -> (steps + 1, H, W, 3) uint8: lerp of the continuous latents of each
    level, re-quantised to the nearest codes at every step and decoded."""
    from emojiray.images import from_model_output, to_model_input

    device = next(vqvae.parameters()).device
    x = to_model_input(torch.from_numpy(np.stack([a, b])), device, channels_last=False)  # (2, 3, H, W)
    z = vqvae.encode_latents(x)  # {level: (2, D, h, w)}
    t = torch.tensor(_ts(steps), device=device).view(-1, 1, 1, 1)  # (T, 1, 1, 1)
    mixed = {lv: (1 - t) * zl[:1] + t * zl[1:] for lv, zl in z.items()}  # {level: (T, D, h, w)}
    return from_model_output(vqvae.decode_codes(vqvae.quantize_latents(mixed)).float())


def _boundary(source: torch.Tensor, layout) -> torch.Tensor:
    """(N,) bool "from B" in token order -> (N,) bool: a 4-neighbour in the same grid is from the other emoji."""
    out = []
    for (s, e), (h, w) in zip(layout.spans(), layout.grids):
        g = source[s:e].view(h, w)
        edge = torch.zeros_like(g)
        edge[1:] |= g[1:] != g[:-1]
        edge[:-1] |= g[:-1] != g[1:]
        edge[:, 1:] |= g[:, 1:] != g[:, :-1]
        edge[:, :-1] |= g[:, :-1] != g[:, 1:]
        out.append(edge.flatten())
    return torch.cat(out)


def mixed_tokens(ta: torch.Tensor, tb: torch.Tensor, t: float, u: torch.Tensor) -> torch.Tensor:
    """(N,) tokens of A and B, (N,) thresholds u in [0, 1) -> B's token where u < t, A's elsewhere."""
    return torch.where(u < t, tb, ta)


def remask_positions(ta: torch.Tensor, tb: torch.Tensor, t: float, u: torch.Tensor, priority: torch.Tensor,
                     remask: float, layout) -> torch.Tensor:
    """(N,) bool: the positions the prior re-samples at step t (see the module docstring)."""
    n = round(remask * 4 * t * (1 - t) * len(ta))
    differ = ta != tb
    if n <= 0 or not differ.any():
        return torch.zeros_like(differ)
    rank = priority + 2.0 * (~_boundary(u < t, layout)).float()  # boundary positions first
    rank = rank.masked_fill(~differ, float("inf"))
    chosen = rank.argsort()[:min(n, int(differ.sum()))]
    return torch.zeros_like(differ).index_fill_(0, chosen, True)


@torch.no_grad()
def prior_path(sampler, a: np.ndarray, b: np.ndarray, steps: int, remask: float, generator: torch.Generator,
               cond: torch.Tensor | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """(H, W, 3) uint8 A and B -> ((steps + 1, H, W, 3) uint8 frames, (steps + 1, N) tokens) through
    mixed code maps re-sampled by the MaskGIT prior of ``sampler``; ``cond`` () or (1,) class id or None
    (unconditional). Frame 0 is exactly A's codes, frame ``steps`` exactly B's."""
    require_mask_filling(sampler, "the prior interpolation path")
    if not 0 <= remask <= 1:
        raise EmojirayError(f"interpolate.remask must be in [0, 1], got {remask}")
    layout, model, device = sampler.layout, sampler.prior, sampler.device
    tok = layout.flatten(encode(sampler.vqvae, np.stack([a, b]), device))  # (2, N)
    ta, tb = tok[0], tok[1]
    u = torch.rand(ta.shape, generator=generator, device=device)  # switch thresholds
    priority = torch.rand(ta.shape, generator=generator, device=device)  # order within a group, < 1
    crn_seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=device))
    p = sampler.params()
    c = None if cond is None else cond.reshape(1).to(device)
    rows = []
    for t in _ts(steps):
        mixed = mixed_tokens(ta, tb, t, u)
        hide = remask_positions(ta, tb, t, u, priority, remask, layout)
        if hide.any():
            with sampler._autocast():
                mixed = model.complete(mixed.masked_fill(hide, model.mask_id)[None], c, steps=p["maskgit_steps"],
                                       temperature=p["temperature"], top_k=p["top_k"], top_p=p["top_p"],
                                       guidance=p["guidance"],
                                       generator=torch.Generator(device=device).manual_seed(crn_seed))[0]
        rows.append(mixed)
    tokens = torch.stack(rows)  # (T, N)
    with sampler._autocast():
        frames = decode(sampler.vqvae, layout.unflatten(tokens))
    return frames, tokens


# -- the metric -------------------------------------------------------------------------------------


def smoothness(frames: np.ndarray, features: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, float]:
    """How even the perceptual steps of a path are: (T, H, W, 3) uint8 frames -> step_variance
    (Var(d / mean d), lower = smoother), path_length (Σ d), mean_step, max_step, detour (path length
    / endpoint distance; 1 = a straight path in feature space), steps (T − 1)."""
    if len(frames) < 2:
        raise EmojirayError("a path needs at least two frames")
    return _steps_of(np.asarray((features or inception_features())(frames)))


def _steps_of(f: np.ndarray) -> dict[str, float]:
    """``smoothness`` from the (T, D) features of a path's frames."""
    f = f.astype(np.float64).reshape(len(f), -1)
    d = np.linalg.norm(np.diff(f, axis=0), axis=1)  # (T - 1,)
    mean = float(d.mean())
    direct = float(np.linalg.norm(f[-1] - f[0]))
    return {"step_variance": float((d / mean).var()) if mean > 0 else 0.0, "path_length": float(d.sum()),
            "mean_step": mean, "max_step": float(d.max()),
            "detour": float(d.sum() / direct) if direct > 0 else float("nan"), "steps": len(d)}


# -- loading ----------------------------------------------------------------------------------------


def _models(paths: RunPaths, log=print):
    """(vqvae, sampler or None, image size): the MaskGIT prior's sampler when ``paths.prior`` holds one."""
    if paths.prior and storage.exists(storage.join(paths.prior, "meta.json")):
        from emojiray.generate.sampler import Sampler

        sampler = Sampler(paths.prior, paths.vqvae or None)
        if sampler.fills_masks:
            return sampler.vqvae, sampler, sampler.image_size
        log(f"interpolate: {paths.prior} is a {sampler.kind} prior, not MaskGIT: pixel and latent paths only")
        return sampler.vqvae, None, sampler.image_size
    note = f"no prior at {paths.prior}" if paths.prior else "no --prior given"
    log(f"interpolate: {note}: pixel and latent paths only")
    from emojiray.models import checkpoint as ckpt

    paths.need("vqvae")
    vqvae, vcfg, _ = ckpt.load_vqvae(paths.vqvae, resolve_device())
    return vqvae.eval(), None, int(vcfg.data.size)


def paths_between(vqvae, sampler, a: np.ndarray, b: np.ndarray, steps: int, remask: float,
                  generator: torch.Generator | None) -> dict[str, np.ndarray]:
    """{method: (steps + 1, H, W, 3) uint8 frames} for every method the models allow."""
    out = {"crossfade": crossfade(a, b, steps), "latent": latent_path(vqvae, a, b, steps)}
    if sampler is not None:
        out["prior"] = prior_path(sampler, a, b, steps, remask, generator)[0]
    return out


def _rows(frames: dict[str, np.ndarray], prefix: str = "") -> list[tuple[str, np.ndarray]]:
    """Labelled sheet rows, small emoji enlarged (nearest) to at least 64 px so the label text stays small."""
    rep = max(1, 64 // next(iter(frames.values())).shape[1])
    return [(f"{prefix}{ROW_LABELS[m]}", f.repeat(rep, 1).repeat(rep, 2)) for m, f in frames.items()]


# -- the CLI demo and the measurement ---------------------------------------------------------------


def interpolate(a: str, b: str, paths: RunPaths, cfg, out: str, vendor: str = "", seed: int = 0,
                log=print) -> dict[str, Any]:
    """Interpolate between emoji ``a`` and ``b`` (image files or names in ``paths.data``).

    Writes under ``out``: ``interpolate_<a>_<b>.png`` (one labelled row per method: pixel crossfade,
    latent, prior), ``interpolate_<a>_<b>_latent.gif`` and ``..._prior.gif`` (ping-pong loops);
    the prior row and GIF only with a MaskGIT prior at ``paths.prior``. Returns {what: URI}.
    """
    from emojiray.data.labels import slug

    ic = cfg.interpolate
    vqvae, sampler, size = _models(paths, log)
    (img_a, label_a), (img_b, label_b) = (load_emoji(s, size, paths.data, vendor) for s in (a, b))
    gen = sampler.generator(seed) if sampler is not None else None
    frames = paths_between(vqvae, sampler, img_a, img_b, ic.steps, ic.remask, gen)

    def stem(spec: str) -> str:
        return slug(Path(spec).stem if storage.exists(spec) else spec)

    name = f"interpolate_{stem(a)}_{stem(b)}"
    written = {"sheet": write_sheet(storage.join(out, f"{name}.png"), _rows(frames), ic.steps + 1)}
    scale = max(1, 128 // size)  # small emoji are hard to see in a GIF
    for m in ("latent", "prior"):
        if m in frames:
            written[m] = save_gif(storage.join(out, f"{name}_{m}.gif"), frames[m], ic.gif_ms, scale=scale)
    log(f"interpolate: {label_a} -> {label_b}, {ic.steps} steps ({', '.join(frames)}) -> {written['sheet']}")
    return written


def seeded_pairs(ids: list, cap: int, seed: int) -> list[tuple[int, int]]:
    """Seeded pairs (i, j), i < j, of different emoji (``ids[i] != ids[j]``): all of them when there are at
    most ``cap`` (``cap`` 0: as many pairs as images), else a seeded random subset of ``cap``."""
    n = len(ids)
    want = cap or n
    total = n * (n - 1) // 2
    rng = np.random.default_rng(seed)
    if total <= 4 * want:  # few: list them all, shuffle, take the first ``want``
        pairs = [(i, j) for i, j in itertools.combinations(range(n), 2) if ids[i] != ids[j]]
        order = rng.permutation(len(pairs))
        return sorted(pairs[k] for k in order[:want])
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < want:
        i, j = sorted(rng.choice(n, 2, replace=False).tolist())
        if ids[i] != ids[j]:
            pairs.add((i, j))
    return sorted(pairs)


def evaluate_interpolation(paths: RunPaths, cfg, out: str, features: Callable | None = None,
                           log=print) -> dict[str, Any]:
    """Smoothness of each path on seeded pairs of held-out emoji; writes ``interpolate.json`` and the
    sheet ``interpolate.png`` (the first ``extensions.examples`` // 2 pairs, three rows each)."""
    paths.need("data")
    t0 = time.perf_counter()
    ic, ec = cfg.interpolate, cfg.extensions
    vqvae, sampler, size = _models(paths, log)
    device = next(vqvae.parameters()).device
    images, labels = read_arrays(paths.data, ("val", "test"))
    if images.shape[1] != size:
        raise EmojirayError(f"the dataset holds {images.shape[1]} px images, the VQ-VAE {size} px")
    pairs = seeded_pairs(labels["emoji_id"], ec.eval_images, ec.seed)
    if not pairs:
        raise EmojirayError(f"{paths.data} has no two different held-out (val, test) emoji to interpolate between")
    features = features or inception_features(device)
    gen = sampler.generator(ec.seed) if sampler is not None else None
    scores: dict[str, list[dict[str, float]]] = {}
    shown: list[tuple[str, np.ndarray]] = []
    n_show = max(1, ec.examples // 2)
    for k, (i, j) in enumerate(pairs):
        frames = paths_between(vqvae, sampler, images[i], images[j], ic.steps, ic.remask, gen)
        feats = np.asarray(features(np.concatenate(list(frames.values()))))  # one batch for every method
        for m, f in zip(frames, np.split(feats, len(frames))):
            scores.setdefault(m, []).append(_steps_of(f))
        if k < n_show:
            shown += _rows(frames, f"{k + 1}. ")
    methods = {}
    for m, rows in scores.items():
        keys = rows[0].keys()
        methods[m] = {key: float(np.nanmean([r[key] for r in rows])) for key in keys}
        methods[m].update({f"{key}_std": float(np.nanstd([r[key] for r in rows])) for key in keys if key != "steps"})
    base = methods["crossfade"]["step_variance"]
    record = {
        "extension": "interpolate", "device": str(device), "date": dt.date.today().isoformat(),
        "data": paths.data, "vqvae": sampler.vqvae_uri if sampler else paths.vqvae,
        "prior": paths.prior if sampler else None, "pairs": len(pairs), "steps": ic.steps, "remask": ic.remask,
        "image_size": int(images.shape[1]), "methods": methods,
        "step_variance_vs_crossfade": {m: (v["step_variance"] / base if base > 0 else None)
                                       for m, v in methods.items() if m != "crossfade"},
        "per_pair": {m: [r["step_variance"] for r in rows] for m, rows in scores.items()},
        "note": "perceptual steps d_i = ||f(x_i) - f(x_i+1)|| (Inception pool3 unless other features were given); "
                "step_variance = Var(d / mean d), lower = smoother (0 = even steps); detour = path length / "
                "endpoint distance; latent and prior paths run between the VQ reconstructions, crossfade "
                "between the real images",
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_measurement(out, "interpolate", record, shown, ic.steps + 1)
    ratios = ", ".join(f"{m} {r:.2f}x" for m, r in record["step_variance_vs_crossfade"].items() if r is not None)
    log(f"interpolate: {len(pairs)} held-out pairs, {ic.steps} steps: step variance "
        + ", ".join(f"{m} {v['step_variance']:.3f}" for m, v in methods.items())
        + f" (vs crossfade: {ratios}) -> {out}")
    return record


# -- as the pipeline runs it (emojiray.extensions.interface) ---------------------------------------


def _demo(run: ExtensionRun, names: list[str], log=print) -> None:
    if len(names) >= 2:
        interpolate(names[0], names[1], run.paths, run.cfg, run.out, log=log)


EXTENSION = Extension(evaluate=lambda run: evaluate_interpolation(run.paths, run.cfg, run.out), demo=_demo,
                      needs=("mask_prior",), headline=("methods", "pairs"))
