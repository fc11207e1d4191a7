"""The pipeline's extension stage: train what the extensions need, run each on the demo emoji and
measure it on held-out data. Everything lands under ``RUN/extensions/`` (see :mod:`.paths`).

In order, for the extensions listed in ``extensions.run`` (each an
:class:`~emojiray.extensions.interface.Extension` in :data:`emojiray.registry.EXTENSIONS`):

1. the MaskGIT priors they need through `train-prior` (Ray Train): one conditioned on the vendor
   (``vendor_prior``) and one per ``extensions.extra_conditions`` (``label_priors``);
2. the emoji classifier and the upscaler, each through the one Ray Train driver (the GPUs when the
   cluster has them), like the tokenizer and the priors;
3. per extension, its measurement (in one Ray task), written as ``<extension>*.png`` sheets and
   ``<extension>.json`` (its headline numbers go to pipeline.json), and its demo on
   ``extensions.demo``.

Each model and each measurement is kept while its inputs and settings stay the same (the one rule
of :func:`emojiray.stages.cached`, markers in ``RUN/extensions/stages/``): a measurement is redone
when a model it reads was retrained, a setting changed or its JSON is missing.
"""

from __future__ import annotations

from typing import Any

from emojiray import storage
from emojiray.config import Config, config_from_dict, validate
from emojiray.errors import EmojirayError
from emojiray.extensions.interface import ExtensionRun
from emojiray.extensions.paths import EXT, RunPaths
from emojiray.registry import EXTENSIONS, PRIORS
from emojiray.stages import MARKERS, cached


def needs(cfg: Config) -> set[str]:
    """The models the extensions in ``extensions.run`` need (names from interface.NEEDS)."""
    return {need for name in cfg.extensions.run for need in EXTENSIONS[name].needs}


def check(cfg: Config) -> None:
    """Errors in the extension settings, before the pipeline spends time on anything."""
    validate(cfg)  # every range (extensions.run names only registered extensions)
    filling = [e for e in cfg.extensions.run if "mask_prior" in EXTENSIONS[e].needs]
    if filling and not any(PRIORS[kind].fills_masks for kind in cfg.pipeline.priors):
        raise EmojirayError(f"extensions {', '.join(filling)} re-sample masked codes: add maskgit to "
                            f"pipeline.priors or remove them from extensions.run")
    labelled = [e for e in cfg.extensions.run if "label_priors" in EXTENSIONS[e].needs]
    if labelled and cfg.prior.condition == "none" and not cfg.extensions.extra_conditions:
        raise EmojirayError(f"extension {', '.join(labelled)} needs a conditional prior: set prior.condition or "
                            f"extensions.extra_conditions")


def check_demo(cfg: Config, data_uri: str) -> None:
    """The demo emoji (``extensions.demo``) are names in the dataset: looked up as soon as it is
    prepared, so that a typo is one line before the training stages, not after them."""
    from emojiray.extensions.lookup import load_emoji

    if any(EXTENSIONS[name].demo for name in cfg.extensions.run):
        for name in cfg.extensions.demo:
            load_emoji(name, cfg.data.size, data_uri)


def run_extensions(cfg: Config, out: str, data_uri: str, vqvae_uri: str, priors: dict[str, dict[str, Any]],
                   codes_uri: str, codes_version: str, force: bool = False, log=print) -> dict[str, Any]:
    """Run the extension stage of a pipeline at ``out``; return the headline metrics per extension.

    ``priors``: {kind: {"prior": URI, "samples": samples URI, "version": the prior stage's version}}
    of the pipeline; ``codes_version``: the code extraction's (it changes with the tokenizer).
    """
    ext = storage.join(out, EXT)
    markers = storage.join(ext, MARKERS)
    want = needs(cfg)
    # extensions.prior, else one that fills masks (MaskGIT), else the pipeline's first (a `cpu` run trains one transformer)
    fills = [p for kind, p in priors.items() if PRIORS[kind].fills_masks]
    main_prior = priors.get(cfg.extensions.prior) or (fills and fills[0]) or next(iter(priors.values()), {})
    versions = {kind: p["version"] for kind, p in priors.items()}  # every model the measurements read

    # 1. more MaskGIT priors: the vendor one, one per extensions.extra_conditions (label-conditioned sheets)
    extra = (["vendor"] if "vendor_prior" in want else []) + \
        [c for c in cfg.extensions.extra_conditions if "label_priors" in want and c not in ("none", "vendor")]
    extra_priors = {c: _extra_prior(cfg, ext, c, codes_uri, codes_version, versions, force, log)
                    for c in dict.fromkeys(extra)}
    paths = RunPaths.of(out, prior=main_prior.get("prior"), vqvae=vqvae_uri, data=data_uri,
                        vendor_prior=extra_priors.get("vendor"))

    # 2. helper models, each through the one Ray Train driver (the GPUs when the cluster has them)
    if "classifier" in want:
        from emojiray.extensions.classifier import train_classifier

        _helper(cfg, markers, "classifier", paths.classifier, "classifier.json", codes_version, versions, force, log,
                lambda: train_classifier(data_uri, paths.classifier, cfg, log=log))
    if "upscaler" in want:
        from emojiray.extensions.upscale import train_upscaler

        _helper(cfg, markers, "upscale", paths.upscaler, "upscaler.json", codes_version, versions, force, log,
                lambda: train_upscaler(data_uri, vqvae_uri, paths.upscaler, cfg, log=log))

    # 3. per extension: its measurement (kept while the models it reads and the settings stay the same), its demo
    label_priors = [main_prior["prior"]] if main_prior and cfg.prior.condition != "none" else []
    label_priors += [u for c, u in extra_priors.items() if c != "vendor"]
    run = ExtensionRun(paths, cfg, ext, label_priors=label_priors,
                       sample_runs={k: p["samples"] for k, p in priors.items() if p.get("samples")})
    settings = {k: v for k, v in cfg.to_dict().items() if k != "ray"}
    result: dict[str, Any] = {}
    for name in cfg.extensions.run:
        result[name] = _measure(cfg, markers, ext, name, run, (codes_version, versions, settings), force, log)
        if EXTENSIONS[name].demo and cfg.extensions.demo:
            EXTENSIONS[name].demo(run, list(cfg.extensions.demo), log)
    return result


def _extra_prior(cfg: Config, ext: str, condition: str, codes_uri: str, codes_version: str, versions: dict,
                 force: bool, log) -> str:
    """A MaskGIT conditioned on ``condition`` under ``ext``, trained unless up to date: its model URI."""
    from emojiray.train.prior_loop import train_prior

    pcfg = config_from_dict(cfg.to_dict())
    pcfg.prior.kind, pcfg.prior.condition = "maskgit", condition
    run_uri = storage.join(ext, f"prior_maskgit_{condition}")
    _, versions[f"prior_{condition}"], _ = cached(
        storage.join(ext, MARKERS, f"prior_maskgit_{condition}.json"), (codes_version, pcfg.to_dict()["prior"]),
        lambda fresh: train_prior(pcfg, codes_uri, run_uri, force=True, log=log)["metrics"], force=force,
        outputs=[storage.join(run_uri, "prior", "meta.json")],
        what=f"extensions: the {condition}-conditioned MaskGIT at {run_uri}", log=log)
    return storage.join(run_uri, "prior")


def _helper(cfg: Config, markers: str, name: str, uri: str, report: str, codes_version: str, versions: dict,
            force: bool, log, train) -> None:
    """Train a helper model (the classifier, the upscaler) unless up to date."""
    def work(fresh: bool) -> dict[str, Any]:
        train()
        return {"uri": uri}

    section = cfg.to_dict()
    _, versions[name], _ = cached(storage.join(markers, f"{name}.json"), (codes_version, section[name],
                                                                          section["data"]),
                                  work, force=force, outputs=[storage.join(uri, report)],
                                  what=f"extensions: the {name} at {uri}", log=log)


def _measure(cfg: Config, markers: str, ext: str, name: str, run: ExtensionRun, key, force: bool,
             log) -> dict[str, Any]:
    """One extension's measurement in one Ray task, unless up to date: its headline numbers."""
    from emojiray.raykit import run_task

    extension = EXTENSIONS[name]
    result, _, _ = cached(storage.join(markers, f"{name}.json"), key,
                          lambda fresh: extension.headline_of(run_task(extension.evaluate, run, ray_cfg=cfg.ray)),
                          force=force, outputs=[storage.join(ext, f"{name}.json")], what=f"extensions: {name}",
                          log=log)
    return result
