"""Style transfer between vendors: keep an emoji's codes where the target vendor's prior finds them
plausible, re-sample the rest with MaskGIT conditioned on the target vendor.

    source image ─ encode ─► tokens x (B, N)
    score: log p(x_i | the other half of x, vendor = target), from two passes with complementary
           random halves masked (MaskGIT was trained to predict masked codes from the visible ones)
    the ``share`` least plausible positions ─► [MASK] ─ MaskGIT.complete(cond = target, guidance) ─► decode

What stays is the content (layout, shape, most codes); what is redrawn is where the source vendor's
drawing disagrees most with the target vendor's. ``share`` trades content for style.

The metric (``evaluate_restyle``): the data hold the same emoji (same code point) drawn by each
vendor, so on held-out emoji present in both, the restyled source is compared with the real
target-vendor image (PSNR, SSIM, and FID per direction; the classifier's vendor agreement when a classifier is
given) against the trivial baseline, the unchanged source, and the tokenizer's reconstruction of
the source (restyling works through the codes, so that is what ``share`` = 0 gives). ``share`` is
chosen on the validation split (highest PSNR to the target) unless ``restyle.share`` fixes it, and
every candidate is reported on the test split.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from emojiray import storage
from emojiray.data.shards import read_arrays, seeded_subset
from emojiray.errors import EmojirayError
from emojiray.extensions.codes import decode, encode, require_mask_filling
from emojiray.extensions.interface import Extension, ExtensionRun
from emojiray.extensions.lookup import load_emoji
from emojiray.extensions.measures import fid, image_scores, inception_features
from emojiray.extensions.paths import RunPaths
from emojiray.extensions.sheets import write_measurement, write_sheet


@torch.no_grad()
def plausibility(model, tokens: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(B, N) log p(token_i | half of the others, cond): two passes, complementary random halves masked."""
    half = torch.rand(tokens.shape, generator=generator, device=tokens.device) < 0.5
    score = torch.empty(tokens.shape, device=tokens.device)
    for hidden in (half, ~half):
        logp = F.log_softmax(model(tokens.masked_fill(hidden, model.mask_id), cond).float(), -1)
        score = torch.where(hidden, logp.gather(-1, tokens[..., None]).squeeze(-1), score)
    return score


@torch.no_grad()
def restyle(sampler, images: np.ndarray, target: str, share: float, guidance: float = 2.0, steps: int = 8,
            generator: torch.Generator | None = None, batch_size: int = 256,
            levels: list[str] | None = None) -> np.ndarray:
    """(N, H, W, 3) uint8 images redrawn in vendor ``target`` -> (N, H, W, 3) uint8.

    ``sampler`` holds a MaskGIT prior conditioned on the vendor.
    """
    require_mask_filling(sampler, "restyling")
    if sampler.condition_name != "vendor":
        raise EmojirayError(f"restyling needs a prior conditioned on the vendor; {sampler.prior_uri} is conditioned "
                            f"on {sampler.condition_name!r} (train one with --set prior.condition=vendor)")
    if not 0 <= share <= 1:
        raise EmojirayError(f"the restyle share must be in [0, 1], got {share}")
    vendor_id = sampler.condition_id(target)
    out = []
    for s in range(0, len(images), batch_size):
        tokens = sampler.layout.flatten(encode(sampler.vqvae, images[s:s + batch_size], sampler.device))
        tokens = restyle_tokens(sampler, tokens, vendor_id, share, guidance, steps, generator, levels)
        out.append(decode(sampler.vqvae, sampler.layout.unflatten(tokens)))
    return np.concatenate(out)


@torch.no_grad()
def restyle_tokens(sampler, tokens: torch.Tensor, vendor_id: int, share: float, guidance: float = 2.0,
                   steps: int = 8, generator: torch.Generator | None = None,
                   levels: list[str] | None = None) -> torch.Tensor:
    """(B, N) tokens -> the same with the ``share`` least plausible positions of ``levels`` (default:
    all) re-sampled for the vendor; the other levels' codes are kept."""
    model, layout = sampler.prior, sampler.layout
    cond = torch.full((len(tokens),), vendor_id, dtype=torch.long, device=tokens.device)
    levels = list(levels or layout.levels)
    unknown = [lv for lv in levels if lv not in layout.levels]
    if unknown:
        raise EmojirayError(f"restyle.levels: unknown level(s) {', '.join(unknown)}; the tokenizer has "
                            f"{', '.join(layout.levels)}")
    editable = torch.zeros(tokens.shape[1], dtype=torch.bool, device=tokens.device)
    for lv, (a, b) in zip(layout.levels, layout.spans()):
        if lv in levels:
            editable[a:b] = True
    k = int(round(share * int(editable.sum())))
    if not k:
        return tokens
    with sampler._autocast():
        score = plausibility(model, tokens, cond, generator).masked_fill(~editable, float("inf"))
        lowest = score.argsort(dim=1)[:, :k]  # the k least plausible editable positions of each row
        return model.complete(tokens.scatter(1, lowest, model.mask_id), cond, steps=steps, guidance=guidance,
                              generator=generator)


# -- the metric -------------------------------------------------------------------------------------


def vendor_pairs(labels: dict[str, list], source: str, target: str) -> tuple[list[int], list[int]]:
    """Row indices (source rows, target rows) of the emoji drawn by both vendors, matched by code point."""
    by_vendor: dict[str, dict[str, int]] = {source: {}, target: {}}
    for i, (u, v) in enumerate(zip(labels["unified"], labels["vendor"])):
        if v in by_vendor:
            by_vendor[v].setdefault(u, i)
    common_ids = sorted(set(by_vendor[source]) & set(by_vendor[target]))
    return [by_vendor[source][u] for u in common_ids], [by_vendor[target][u] for u in common_ids]


def _pairs(data_uri: str, split: str, vendors: list[str], cap: int, seed: int):
    """{(source, target): (source images, target images)} for every ordered vendor pair of a split."""
    images, labels = read_arrays(data_uri, (split,), ("unified", "vendor"))
    out = {}
    for src in vendors:
        for tgt in vendors:
            if src == tgt:
                continue
            s_rows, t_rows = vendor_pairs(labels, src, tgt)
            keep = seeded_subset(len(s_rows), cap, seed)
            if len(keep):
                out[(src, tgt)] = (images[np.array(s_rows)[keep]], images[np.array(t_rows)[keep]])
    return out


def evaluate_restyle(paths: RunPaths, cfg, out: str, features: Callable | None = None,
                     vendor_probs: Callable | None = None, log=print) -> dict[str, Any]:
    """Restyle held-out emoji into the other vendor; write ``restyle.json`` and ``restyle.png``.

    ``features``: uint8 NHWC -> (N, D) for FID (default: Inception pool3). ``vendor_probs``: uint8
    NHWC -> (N, vendors) probabilities in the prior's vendor order, for the agreement metric
    (default: the classifier at ``paths.classifier`` when there is one).
    """
    paths.need("data", "vendor_prior")
    t0 = time.perf_counter()
    rc, ec = cfg.restyle, cfg.extensions
    sampler, vendors = _vendor_sampler(paths)
    features = features or inception_features(sampler.device)
    if vendor_probs is None and paths.classifier and storage.exists(storage.join(paths.classifier, "meta.json")):
        vendor_probs = classifier_vendor_probs(paths.classifier, vendors, sampler.device)
    gen = sampler.generator(ec.seed)

    def restyled(pairs, share):
        return {d: restyle(sampler, src, d[1], share, rc.guidance, rc.steps, gen, levels=rc.levels)
                for d, (src, _) in pairs.items()}

    shares = [rc.share] if rc.share else list(rc.shares)
    chosen, val_psnr = _choose_share(restyled, shares, paths.data, vendors, ec, log) if not rc.share and \
        len(shares) > 1 else (shares[0], {})
    test = _pairs(paths.data, "test", vendors, ec.eval_images, ec.seed + 1)
    if not test:
        raise EmojirayError(f"the test split of {paths.data} has no emoji drawn by two of {', '.join(vendors)}")
    methods: dict[str, dict[str, np.ndarray]] = {
        "source": {d: s for d, (s, _) in test.items()},
        "vq_source": {d: decode(sampler.vqvae, encode(sampler.vqvae, s, sampler.device))
                      for d, (s, _) in test.items()}}
    for share in shares:
        methods[f"restyle_{share:g}"] = restyled(test, share)
    report = _score(methods, test, features, vendor_probs, vendors)
    best, base = f"restyle_{chosen:g}", report["source"]
    record = {
        "extension": "restyle", "device": str(sampler.device), "date": dt.date.today().isoformat(),
        "prior": paths.vendor_prior, "vqvae": sampler.vqvae_uri, "data": paths.data, "vendors": vendors,
        "pairs": {f"{a}->{b}": len(s) for (a, b), (s, _) in test.items()}, "guidance": rc.guidance,
        "steps": rc.steps, "shares": shares, "chosen_share": chosen, "validation_psnr": val_psnr,
        "methods": report, "chosen": best,
        "vs_source": {"psnr_db": report[best]["psnr"] - base["psnr"], "ssim": report[best]["ssim"] - base["ssim"],
                      "fid": (None if report[best]["fid"] is None or base["fid"] is None
                              else report[best]["fid"] - base["fid"])},
        "note": "each held-out emoji is redrawn in the other vendor's style and compared with that vendor's real "
                "drawing; 'source' is the unchanged input (the trivial baseline), 'vq_source' its tokenizer "
                "reconstruction (restyling at share 0)",
        "seconds": round(time.perf_counter() - t0, 1),
    }
    show = max(1, ec.examples)
    rows = [row for d, (source, target) in test.items() for row in (
        (f"{d[0]} (source)", source[:show]), (f"-> {d[1]} (share {chosen:g})", methods[best][d][:show]),
        (f"{d[1]} (real)", target[:show]))]
    write_measurement(out, "restyle", record, rows, show)
    b = report[best]
    log(f"restyle: {sum(len(s) for s, _ in test.values())} held-out pairs, share {chosen:g}: PSNR to the real target "
        f"{b['psnr']:.2f} dB vs unchanged source {base['psnr']:.2f}; SSIM {b['ssim']:.3f} vs {base['ssim']:.3f}; "
        f"FID {_f(b['fid'])} vs {_f(base['fid'])} -> {out}")
    return record


def _vendor_sampler(paths: RunPaths):
    """(Sampler, vendor names) of the run's vendor-conditioned MaskGIT prior."""
    from emojiray.generate.sampler import Sampler

    sampler = Sampler(paths.vendor_prior, paths.vqvae or None)
    require_mask_filling(sampler, "restyling")
    vendors = list(sampler.condition_values)
    if sampler.condition_name != "vendor" or len(vendors) < 2:
        raise EmojirayError(f"{paths.vendor_prior} is not a MaskGIT prior conditioned on two or more vendors")
    return sampler, vendors


def _choose_share(restyled, shares: list[float], data: str, vendors: list[str], ec, log) -> tuple[float, dict]:
    """The share with the best PSNR to the real target drawing on the validation split: (share, PSNR by share)."""
    val = _pairs(data, "val", vendors, ec.eval_images, ec.seed)
    if not val:
        return shares[0], {}
    val_psnr = {}
    for share in shares:
        out_v = restyled(val, share)
        val_psnr[share] = float(np.mean(np.concatenate([image_scores(out_v[d], t)[0]
                                                        for d, (_, t) in val.items()])))
    chosen = max(val_psnr, key=val_psnr.get)
    log(f"restyle: share chosen on the validation split: {chosen} "
        f"(PSNR to the target vendor {', '.join(f'{s}: {v:.2f}' for s, v in val_psnr.items())})")
    return chosen, val_psnr


def _score(methods: dict[str, dict], test: dict, features: Callable, vendor_probs: Callable | None,
           vendors: list[str]) -> dict[str, Any]:
    """PSNR, SSIM, FID (and vendor agreement) of each method against the real target drawings, per
    direction and pooled (weighted by pairs: over both directions sources and targets are one set)."""
    targets = {d: t for d, (_, t) in test.items()}
    target_feats = {d: features(t) for d, t in targets.items()}
    report: dict[str, Any] = {}
    for name, per_dir in methods.items():
        rows = {}
        for d in test:
            psnr, ssim = image_scores(per_dir[d], targets[d])
            rows[d] = {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim)), "n": len(psnr),
                       "fid": fid(features(per_dir[d]), target_feats[d])}
            if vendor_probs is not None:
                rows[d]["vendor_agreement"] = float((vendor_probs(per_dir[d]).argmax(1) == vendors.index(d[1])).mean())
        weights = np.array([r["n"] for r in rows.values()], float)
        row = {k: float(np.average([r[k] for r in rows.values()], weights=weights))
               for k in ("psnr", "ssim", "vendor_agreement") if k in next(iter(rows.values()))}
        fids = [r["fid"] for r in rows.values()]
        row["fid"] = None if any(f is None for f in fids) else float(np.mean(fids))
        row["per_direction"] = {f"{a}->{b}": r for (a, b), r in rows.items()}
        report[name] = row
    return report


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def classifier_vendor_probs(uri: str, vendors: list[str], device) -> Callable[[np.ndarray], np.ndarray]:
    """The emoji classifier's vendor head as (N, len(vendors)) probabilities in ``vendors`` order."""
    from emojiray.extensions.classifier import load_classifier, predict

    model, meta = load_classifier(uri, device)
    if "vendor" not in meta.get("vocab", {}):
        raise EmojirayError(f"the classifier at {uri} has no vendor head (classifier.labels)")
    vocab = list(meta["vocab"]["vendor"])
    missing = [v for v in vendors if v not in vocab]
    if missing:
        raise EmojirayError(f"the classifier at {uri} does not know vendor(s) {', '.join(missing)}")
    cols = [vocab.index(v) for v in vendors]

    def probs(images: np.ndarray) -> np.ndarray:
        return predict(model, images)["vendor"][:, cols]

    return probs


def restyle_files(specs: list[str], target: str, paths: RunPaths, cfg, out: str, variants: int = 1,
                  share: float = 0.0, seed: int = 0, log=print) -> list[str]:
    """The CLI's demo: each input (file or emoji name) redrawn in vendor ``target``.

    Writes ``<stem>_<target>.png`` (the first variant) and ``restyle_<stem>.png`` (source | variants |
    the real target-vendor drawing when the input is an emoji name the dataset has for ``target``).
    """
    from emojiray.data.labels import slug
    from emojiray.images import to_png_bytes

    paths.need("vendor_prior")
    sampler = _vendor_sampler(paths)[0]
    share = share or cfg.restyle.share or _default_share(cfg, paths)
    gen = sampler.generator(seed)
    written = []
    for spec in specs:
        is_file = storage.exists(spec)
        image, label = load_emoji(spec, sampler.image_size, paths.data,
                                         vendor="" if is_file else _other_vendor(sampler, target))
        stem = slug(Path(spec).stem if is_file else spec)
        redrawn = restyle(sampler, np.repeat(image[None], variants, 0), target, share, cfg.restyle.guidance,
                          cfg.restyle.steps, gen, levels=cfg.restyle.levels)
        storage.write_bytes(storage.join(out, f"{stem}_{slug(target)}.png"), to_png_bytes(redrawn[0]))
        row = [image[None], redrawn]
        if not is_file and paths.data:
            try:
                row.append(load_emoji(spec, sampler.image_size, paths.data, vendor=target)[0][None])
            except EmojirayError:
                pass
        written.append(write_sheet(storage.join(out, f"restyle_{stem}.png"),
                                          [(f"{label} -> {target}", np.concatenate(row))], sum(len(r) for r in row)))
        log(f"restyle: {label} -> {target} (share {share:g}) -> {written[-1]}")
    return written


def _default_share(cfg, paths: RunPaths) -> float:
    """The share the last evaluation chose on the validation split, else the middle candidate."""
    chosen = storage.join(paths.out, "restyle.json") if paths.out else ""
    if chosen and storage.exists(chosen):
        return float(storage.read_json(chosen).get("chosen_share") or 0.5)
    shares = list(cfg.restyle.shares)
    return shares[len(shares) // 2] if shares else 0.5


def _other_vendor(sampler, target: str) -> str:
    """For a name lookup: the source drawing comes from a vendor other than the target."""
    sampler.condition_id(target)  # one-line error for an unknown vendor
    others = [v for v in sampler.condition_values if v != target]
    return others[0] if others else ""


# -- as the pipeline runs it (emojiray.extensions.interface) ---------------------------------------


def _demo(run: ExtensionRun, names: list[str], log=print) -> None:
    from emojiray.models import checkpoint as ckpt

    with ckpt.LocalCopy(run.paths.vendor_prior) as d:
        vendors = list(ckpt.read_meta(d, kind="prior").get("vocab", {}).get("vendor", []))
    if names and len(vendors) >= 2:
        restyle_files(names[:1], vendors[-1], run.paths, run.cfg, run.out, variants=2, log=log)


EXTENSION = Extension(evaluate=lambda run: evaluate_restyle(run.paths, run.cfg, run.out), demo=_demo,
                      needs=("vendor_prior", "classifier"), headline=("methods", "vs_source", "chosen_share", "pairs"))
