"""The pipeline's extension stage: train what the extensions need, run each on the demo emoji and
measure it on held-out data. Everything lands under ``RUN/extensions/`` (see :mod:`.common`).

In order, for the extensions listed in ``extensions.run``:

1. more MaskGIT priors through `train-prior` (Ray Train): one conditioned on the vendor (restyle) and
   one per ``extensions.extra_conditions`` (the by-category sheets);
2. the emoji classifier and the upscaler, each through the one Ray Train driver (the GPUs when the
   cluster has them), like the tokenizer and the priors;
3. per extension, a demo on ``extensions.demo`` and its measurement (each in one Ray task), written
   as ``<extension>*.png`` sheets and ``<extension>.json``; headline numbers go to pipeline.json.

A model whose inputs did not change since the last run is kept (a fingerprint next to it); an
evaluation is redone when any model it reads was retrained or its JSON is missing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from emojiray import storage
from emojiray.config import Config, config_from_dict, validate
from emojiray.errors import EmojirayError
from emojiray.extensions.common import EXT, RunPaths
from emojiray.registry import PRIORS



def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def check(cfg: Config) -> None:
    """Errors in the extension settings, before the pipeline spends time on anything."""
    validate(cfg)  # every range (extensions.run names only known extensions)
    needs_filling = [e for e in cfg.extensions.run if e in ("interpolate", "inpaint")]
    if needs_filling and not any(PRIORS[kind].fills_masks for kind in cfg.pipeline.priors):
        raise EmojirayError(f"extensions {', '.join(needs_filling)} re-sample masked codes: add maskgit to "
                            f"pipeline.priors or remove them from extensions.run")
    if "condition" in cfg.extensions.run and cfg.prior.condition == "none" and not cfg.extensions.extra_conditions:
        raise EmojirayError("extension condition needs a conditional prior: set prior.condition or extensions.extra_conditions")


DEMO_EXTENSIONS = ("interpolate", "restyle", "upscale", "inpaint")  # the ones that draw extensions.demo


def check_demo(cfg: Config, data_uri: str) -> None:
    """The demo emoji (``extensions.demo``) are names in the dataset: looked up as soon as it is
    prepared, so that a typo is one line before the training stages, not after them."""
    from emojiray.extensions.common import load_emoji

    if set(cfg.extensions.run) & set(DEMO_EXTENSIONS):
        for name in cfg.extensions.demo:
            load_emoji(name, cfg.data.size, data_uri)


def run_extensions(cfg: Config, out: str, data_uri: str, vqvae_uri: str, priors: dict[str, dict[str, Any]],
                   codes_uri: str, tokenizer_fp: str, force: bool = False, log=print) -> dict[str, Any]:
    """Run the extension stage of a pipeline at ``out``; return the headline metrics per extension.

    ``priors``: {kind: {"prior": URI, "retrained": bool, "samples": samples URI}} of the pipeline.
    """
    from emojiray.raykit import run_task
    from emojiray.train.prior_loop import train_prior

    run = set(cfg.extensions.run)
    ext = storage.join(out, EXT)
    # extensions.prior, else one that fills masks (MaskGIT), else the pipeline's first (a `cpu` run trains one transformer)
    fills = [p for kind, p in priors.items() if PRIORS[kind].fills_masks]
    main_prior = priors.get(cfg.extensions.prior) or (fills and fills[0]) or next(iter(priors.values()), {})
    paths = RunPaths.of(out, prior=main_prior.get("prior"), vqvae=vqvae_uri, data=data_uri)
    changed = force or any(p.get("retrained") for p in priors.values())
    result: dict[str, Any] = {}

    # 1. more MaskGIT priors: the vendor one (restyle), the extra conditions (condition sheets)
    extra = (["vendor"] if "restyle" in run else []) + \
        [c for c in cfg.extensions.extra_conditions if "condition" in run and c not in ("none", "vendor")]
    extra_priors: dict[str, str] = {}
    for condition in dict.fromkeys(extra):
        pcfg = config_from_dict(cfg.to_dict())
        pcfg.prior.kind, pcfg.prior.condition = "maskgit", condition
        run_uri = storage.join(ext, f"prior_maskgit_{condition}")
        fp = _fingerprint(tokenizer_fp, pcfg.to_dict()["prior"])
        summary = storage.join(run_uri, "train_prior.json")
        if not force and storage.exists(summary) and storage.read_json(summary).get("fingerprint") == fp:
            log(f"extensions: the {condition}-conditioned MaskGIT at {run_uri} is up to date")
        else:
            r = train_prior(pcfg, codes_uri, run_uri, force=True, log=log)
            storage.write_json(summary, {**r, "fingerprint": fp})
            changed = True
        extra_priors[condition] = storage.join(run_uri, "prior")

    # 2. helper models: the classifier (condition sheets, restyle's vendor agreement), the upscaler
    def helper_model(name: str, uri: str, fn, *args) -> None:
        nonlocal changed
        fp = _fingerprint(tokenizer_fp, cfg.to_dict()[name], cfg.data.__dict__)
        marker = storage.join(uri, "fingerprint.json")
        if not force and storage.exists(marker) and storage.read_json(marker).get("fingerprint") == fp:
            log(f"extensions: the {name} at {uri} is up to date")
            return
        fn(*args, log=log)  # Ray Train from this driver (emojiray.train.driver.fit)
        storage.write_json(marker, {"fingerprint": fp})
        changed = True

    if run & {"condition", "restyle"}:
        from emojiray.extensions.classifier import train_classifier

        helper_model("classifier", paths.classifier, train_classifier, data_uri, paths.classifier, cfg)
    if "upscale" in run:
        from emojiray.extensions.upscale import train_upscaler

        helper_model("upscale", paths.upscaler, train_upscaler, data_uri, vqvae_uri, paths.upscaler, cfg)

    # 3. demos and measurements
    def measured(name: str, fn, *args, **kwargs) -> dict[str, Any]:
        uri = storage.join(ext, f"{name}.json")
        if not changed and storage.exists(uri):
            log(f"extensions: {name} is up to date")
            return storage.read_json(uri)
        return run_task(fn, *args, ray_cfg=cfg.ray, **kwargs)

    demo = list(cfg.extensions.demo)
    if "interpolate" in run:
        from emojiray.extensions.interpolate import evaluate_interpolation, interpolate

        if len(demo) >= 2:
            interpolate(demo[0], demo[1], paths, cfg, ext, log=log)
        result["interpolate"] = _headline(measured("interpolate", evaluate_interpolation, paths, cfg, ext))
    if "condition" in run:
        from emojiray.extensions.condition import condition_report

        # the pipeline's priors share prior.condition: one of them (MaskGIT samples fastest) draws the sheets
        conditional = [main_prior["prior"]] if main_prior and cfg.prior.condition != "none" else []
        conditional += [u for c, u in extra_priors.items() if c != "vendor"]
        sample_runs = {k: p["samples"] for k, p in priors.items() if p.get("samples")}
        result["condition"] = _headline(measured("condition", condition_report, paths, cfg, ext,
                                                 priors=conditional, sample_runs=sample_runs))
    if "restyle" in run:
        from emojiray.extensions.restyle import evaluate_restyle, restyle_files

        vpaths = RunPaths.of(out, vqvae=vqvae_uri, data=data_uri, vendor_prior=extra_priors["vendor"])
        result["restyle"] = _headline(measured("restyle", evaluate_restyle, vpaths, cfg, ext))
        vendors = _vendors(extra_priors["vendor"])
        if demo and len(vendors) >= 2:
            restyle_files(demo[:1], vendors[-1], vpaths, cfg, ext, variants=2, log=log)
    if "upscale" in run:
        from emojiray.extensions.upscale import evaluate_upscale, upscale_files

        result["upscale"] = _headline(measured("upscale", evaluate_upscale, paths, cfg, ext))
        if demo:
            upscale_files(demo[:1], paths, ext, log=log)
    if "inpaint" in run:
        from emojiray.extensions.inpaint import evaluate_inpaint, inpaint_files

        result["inpaint"] = _headline(measured("inpaint", evaluate_inpaint, paths, cfg, ext))
        if demo:
            inpaint_files(demo[:1], "box:0.2,0.5,0.8,0.9", paths, cfg, ext, cfg.inpaint.completions, log=log)
    return result


def _vendors(prior_uri: str) -> list[str]:
    from emojiray.models import checkpoint as ckpt

    with ckpt.LocalCopy(prior_uri) as d:
        return list(ckpt.read_meta(d, kind="prior").get("vocab", {}).get("vendor", []))


def _headline(record: dict[str, Any]) -> dict[str, Any]:
    """The numbers pipeline.json keeps of an extension's JSON (its summary block, else its top-level numbers)."""
    if "summary" in record and isinstance(record["summary"], dict):
        return record["summary"]
    keep = {}
    for key in ("methods", "vs_source", "vs_naive_fill", "vs_bicubic", "chosen_share", "images", "pairs"):
        if key in record:
            keep[key] = record[key]
    return keep
