"""Conditional generation: a sheet per condition value (emotion, category) and how well it obeys.

For every conditional prior, ``extensions.condition_samples`` samples are drawn per condition value
(the emotion ``none`` and values the prior never saw in training are skipped) and measured with the
emoji classifier (:mod:`emojiray.extensions.classifier`):

* agreement: the share of samples whose predicted class for the prior's label is the requested
  value; its ceiling is the classifier's recall of that value on real held-out emoji (given beside);
* Inception Score over the label's classes, exp E_x KL(p(y|x) || p(y)) (:mod:`emojiray.metrics.inception_score`),
  for each value's samples (near 1 when they all look like one class, as they should), for the
  prior's samples pooled over the values, for real held-out emoji and for every sample run of the
  pipeline (``sample_runs``), per classifier head;
* FID of each value's samples against real emoji with that label (all splits, as FID against the
  training data is the usual protocol), where both sets hold at least ``eval.min_condition_images``.

The Inception Score uses the emoji classifier because the standard TF-Inception pool3 network used
for FID carries no classifier head (and ImageNet classes would say little about emoji anyway).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from emojiray import storage
from emojiray.config import Config
from emojiray.data.labels import NO_EMOTION, slug
from emojiray.data.shards import read_arrays, seeded_subset
from emojiray.devices import resolve_device
from emojiray.errors import EmojirayError
from emojiray.extensions.classifier import head_metrics, load_classifier, predict
from emojiray.extensions.interface import Extension
from emojiray.extensions.measures import fid, inception_features, json_safe
from emojiray.extensions.paths import RunPaths
from emojiray.extensions.sheets import enlarged, write_sheet
from emojiray.images import grid, to_png_bytes
from emojiray.metrics.inception_score import effective_splits, inception_score

NOTE = ("Inception Score here is computed with the emoji classifier trained on the real labelled data "
        "(exp E[KL(p(y|x) || p(y))] over its emotion, category and vendor classes, with splits): the standard "
        "TF-Inception pool3 network used for FID carries no classifier head. Emotion applies to face emoji "
        "only ('none' is a class). A single condition value's samples should all look like one class, so "
        "their IS is near 1; the pooled IS over all values measures how distinct the values are.")


def agreement(probs: np.ndarray, wanted: int) -> float | None:
    """Share of rows of (N, C) probabilities whose most likely class is ``wanted``."""
    return float((probs.argmax(1) == wanted).mean()) if len(probs) else None


def distribution(ids: np.ndarray, vocab: list[str], top: int = 0) -> dict[str, float]:
    """{value: share} of class ids, most frequent first (the ``top`` most, 0 = all present)."""
    if len(ids) == 0:
        return {}
    counts = np.bincount(ids, minlength=len(vocab))
    order = [i for i in np.argsort(-counts, kind="stable") if counts[i]]
    return {vocab[i]: float(counts[i] / len(ids)) for i in (order[:top] if top else order)}


def score_set(probs: dict[str, np.ndarray], vocab: dict[str, list[str]], splits: int) -> dict[str, Any]:
    """Per head: IS (mean, std, splits used) and the predicted class distribution of one image set."""
    out = {}
    for label, p in probs.items():
        if not len(p):
            continue
        mean, std = inception_score(p, splits)
        out[label] = {"inception_score": mean, "inception_score_std": std,
                      "splits": effective_splits(len(p), p.shape[1], splits),
                      "predicted": distribution(p.argmax(1), vocab[label])}
    return out


def read_sample_run(uri: str) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """(images (N, H, W, 3) uint8, requested condition per sample ("" = none), manifest) of a sample run."""
    from emojiray.generate.sample_run import load_samples_manifest, read_shard, shard_arrays

    manifest = load_samples_manifest(uri)
    images, conditions = [], []
    for f in manifest["files"]:
        arrays = shard_arrays(read_shard(uri, f["path"]), manifest)
        images.append(arrays["images"])
        conditions += arrays["condition"]
    size = int(manifest["image_size"])
    return (np.concatenate(images) if images else np.zeros((0, size, size, 3), np.uint8)), conditions, manifest


def condition_report(paths: RunPaths, cfg: Config, out: str, priors: list[str] | None = None,
                     sample_runs: dict[str, str] | None = None,
                     features: Callable[[np.ndarray], np.ndarray] | None = None, log=print) -> dict[str, Any]:
    """Sheets and metrics of conditional generation; writes under ``out``:

    * ``condition_<label>_<value>.png``: the samples of one condition value;
    * ``condition_<label>.png``: one labelled row per value (with its classifier agreement);
    * ``condition.json``: per prior and value agreement, IS and FID; IS and label distributions of real
      held-out data (with the classifier's accuracy there: the ceiling) and of every sample run.

    ``priors``: conditional prior URIs (default: ``paths.prior``); ``sample_runs``: {kind: URI of an
    ``emojiray sample`` run}; ``features``: uint8 NHWC -> (N, D) for FID (default: TF-Inception pool3).
    Returns the JSON record.
    """
    paths.need("data", "classifier")
    priors = list(priors) if priors is not None else ([paths.prior] if paths.prior else [])
    sample_runs = dict(sample_runs or {})
    if not priors and not sample_runs:
        raise EmojirayError("nothing to measure: give a conditional prior (--prior) or sample runs (--samples)")
    n = int(cfg.extensions.condition_samples)
    if n < 1:
        raise EmojirayError(f"extensions.condition_samples must be >= 1, got {n}")
    report = _Report(paths, cfg, out, n, features, log)
    report_priors: dict[str, Any] = {}
    for uri in priors:
        name, entry = report.prior(uri, taken=report_priors)
        report_priors[name] = entry
    report_runs = {kind: report.sample_run(kind, uri) for kind, uri in sample_runs.items()}
    real = report.real
    summary = {
        "mean_agreement": {k: p["mean_agreement"] for k, p in report_priors.items()},
        "mean_real_agreement": {k: p["mean_real_agreement"] for k, p in report_priors.items()},
        "pooled_inception_score": {k: p.get("pooled_inception_score") for k, p in report_priors.items()},
        "inception_score": {"real": {lb: h.get("inception_score") for lb, h in real["heads"].items()},
                            **{k: {lb: h["inception_score"] for lb, h in r["heads"].items()}
                               for k, r in report_runs.items()}},
        "real_accuracy": {lb: h["accuracy"] for lb, h in real["heads"].items()},
    }
    record = json_safe({
        "note": NOTE, "classifier": paths.classifier, "data": paths.data, "samples_per_value": n,
        "is_splits": report.splits, "seed": cfg.extensions.seed, "summary": summary, "real": real,
        "priors": report_priors, "sample_runs": report_runs})
    storage.write_json(storage.join(out, "condition.json"), record)
    log(f"condition: sheets and condition.json -> {out}")
    return record


class _Report:
    """What the parts of a condition report share: the classifier, the real emoji, the features."""

    def __init__(self, paths: RunPaths, cfg: Config, out: str, n: int, features, log=print):
        from emojiray.data import shards

        self.paths, self.cfg, self.out, self.n, self.log = paths, cfg, out, n, log
        self.splits = int(cfg.classifier.is_splits)
        self.device = resolve_device()
        self.model, meta = load_classifier(paths.classifier, self.device)
        self.vocab: dict[str, list[str]] = {lb: list(v) for lb, v in meta["vocab"].items()}
        self.labels = list(meta["labels"])
        self.manifest = shards.load_manifest(paths.data)
        self.features = features
        self.used_sheets: set[str] = set()
        self._real_feats: dict[tuple[str, str], np.ndarray | None] = {}
        cols = ("split", *dict.fromkeys(c for c in (*self.labels, "emotion", "category", "vendor")
                                        if c in self.manifest["vocab"]))
        self.real_images, self.real_labels = read_arrays(paths.data, ("train", "val", "test"), cols)
        self.real = self._real_heads()

    def featurize(self, images: np.ndarray) -> np.ndarray:
        if self.features is None:
            self.features = inception_features(self.device)
        return np.asarray(self.features(images))

    def _real_heads(self) -> dict[str, Any]:
        """The classifier on real held-out emoji: its accuracy (the ceiling of agreement) and IS per head."""
        held = np.array([s == "test" for s in self.real_labels["split"]], dtype=bool)
        held_probs = predict(self.model, self.real_images[held])
        real: dict[str, Any] = {"split": "test", "images": int(held.sum()), "heads": {}}
        for lb in self.labels:
            ids = np.array([self.vocab[lb].index(v) for v, h in zip(self.real_labels[lb], held) if h], dtype=np.int64)
            real["heads"][lb] = {**head_metrics(held_probs[lb], ids, self.vocab[lb]),
                                 **score_set({lb: held_probs[lb]}, self.vocab, self.splits).get(lb, {}),
                                 "distribution": distribution(ids, self.vocab[lb])}
        self.log(f"condition: real held-out ({real['images']} emoji): " + ", ".join(
            f"{lb} IS {h.get('inception_score', float('nan')):.2f}, classifier accuracy {h['accuracy'] or 0:.3f}"
            for lb, h in real["heads"].items()))
        return real

    def real_features(self, label: str, value: str) -> np.ndarray | None:
        """Features of (a seeded subset of) the real emoji with ``label`` = ``value``; None when too few."""
        if (label, value) not in self._real_feats:
            ext = self.cfg.extensions
            rows = np.flatnonzero(np.array([v == value for v in self.real_labels.get(label, [])], dtype=bool))
            rows = rows[seeded_subset(len(rows), ext.eval_images, ext.seed)]
            enough = len(rows) >= max(2, self.cfg.eval.min_condition_images)
            self._real_feats[label, value] = self.featurize(self.real_images[rows]) if enough else None
        return self._real_feats[label, value]

    def _values(self, sampler, uri: str) -> list[str]:
        """The condition values to sample: those with training examples (not the emotion 'none')."""
        label, values = sampler.condition_name, sampler.condition_values
        if label == "none":
            raise EmojirayError(f"the prior at {uri} is unconditional: condition sheets need one trained with "
                                f"--set prior.condition=emotion (or category)")
        counts = list(sampler.class_counts)
        if len(counts) != len(values):  # older priors: the dataset's label counts
            have = self.manifest.get("counts", {}).get(label, {})
            counts = [int(have.get(v, 0)) for v in values]
        keep = [v for v, c in zip(values, counts) if c > 0 and not (label == "emotion" and v == NO_EMOTION)]
        if not keep:
            raise EmojirayError(f"the prior at {uri} has no {label} value with training examples to sample")
        return keep

    def prior(self, uri: str, taken: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """One conditional prior: samples per value, sheets, agreement / IS / FID -> (name, entry)."""
        from emojiray.generate.sampler import Sampler

        sampler = Sampler(uri, self.paths.vqvae or None, str(self.device))
        keep = self._values(sampler, uri)
        label = sampler.condition_name
        name = f"{sampler.kind}_{label}"
        name = name if name not in taken else f"{name}_{len(taken)}"
        stem = f"condition_{label}" if f"condition_{label}" not in self.used_sheets else f"condition_{label}-{name}"
        self.used_sheets.add(stem)
        params = sampler.params()
        rows, per_value, pooled = [], {}, []
        for value in keep:
            images, per_value[value] = self._value(sampler, params, stem, value, pooled)
            shown = "n/a" if per_value[value]["agreement"] is None else f"{per_value[value]['agreement']:.0%}"
            rows.append((f"{value} {shown}", images))
            self.log(f"condition: {name} {label}={value}: agreement {shown}, FID {_f(per_value[value]['fid'])}")
        overview = write_sheet(storage.join(self.out, f"{stem}.png"), rows, min(8, self.n))
        agree = [r["agreement"] for r in per_value.values() if r["agreement"] is not None]
        ceiling = [r["real_agreement"] for r in per_value.values() if r.get("real_agreement") is not None]
        entry = {"uri": uri, "kind": sampler.kind, "label": label, "params": params,
                 "sheet": storage.basename(overview), "values": per_value,
                 "mean_agreement": float(np.mean(agree)) if agree else None,
                 "mean_real_agreement": float(np.mean(ceiling)) if ceiling else None,
                 "chance_agreement": 1.0 / len(keep)}
        if pooled:
            mean, std = inception_score(np.concatenate(pooled), self.splits)
            entry.update(pooled_inception_score=mean, pooled_inception_score_std=std)
        return name, entry

    def _value(self, sampler, params: dict[str, Any], stem: str, value: str,
               pooled: list[np.ndarray]) -> tuple[np.ndarray, dict[str, Any]]:
        """``n`` samples of one condition value, their sheet and measures -> (images, record)."""
        from emojiray.generate.sample_run import shard_seed

        n, label, cid = self.n, sampler.condition_name, sampler.condition_id(value)
        images, _ = sampler.generate(torch.full((n,), cid, dtype=torch.long), n,
                                     sampler.generator(shard_seed(self.cfg.extensions.seed, cid)), params,
                                     batch_size=self.cfg.sample.batch_size)
        sheet = enlarged(_image(grid(images, ncols=min(8, n))))
        sheet_uri = storage.write_bytes(storage.join(self.out, f"{stem}_{slug(value)}.png"), to_png_bytes(sheet))
        record: dict[str, Any] = {"samples": n, "sheet": storage.basename(sheet_uri)}
        if label in self.labels and value in self.vocab[label]:
            p = predict(self.model, images)[label]
            pooled.append(p)
            mean, std = inception_score(p, self.splits)
            record.update(agreement=agreement(p, self.vocab[label].index(value)),
                          real_agreement=self.real["heads"][label]["recall"].get(value),
                          inception_score=mean, inception_score_std=std,
                          predicted=distribution(p.argmax(1), self.vocab[label], top=3))
        else:
            record.update(agreement=None, real_agreement=None, inception_score=None,
                          note=f"the classifier has no {label} head or value {value!r}")
        rf = self.real_features(label, value)
        record["real_images"] = int(sum(v == value for v in self.real_labels.get(label, [])))
        enough = rf is not None and n >= self.cfg.eval.min_condition_images
        record["fid"] = fid(self.featurize(images), rf) if enough else None  # too few for a meaningful FID
        return images, record

    def sample_run(self, kind: str, uri: str) -> dict[str, Any]:
        """A sample run of the pipeline (the prior's own mix of conditions): IS and label distribution."""
        images, conditions, smanifest = read_sample_run(uri)
        probs = predict(self.model, images)
        entry = {"uri": uri, "images": int(len(images)), "heads": score_set(probs, self.vocab, self.splits)}
        cname = (smanifest.get("condition") or {}).get("name", "none")
        asked = [i for i, c in enumerate(conditions) if c]
        if cname in self.labels and asked:
            wanted = np.array([self.vocab[cname].index(conditions[i]) if conditions[i] in self.vocab[cname] else -1
                               for i in asked])
            entry["condition"] = cname
            entry["agreement"] = float((probs[cname][asked].argmax(1) == wanted).mean())
        self.log(f"condition: samples {kind} ({len(images)}): " + ", ".join(
            f"{lb} IS {h['inception_score']:.2f}" for lb, h in entry["heads"].items()))
        return entry


def _image(array: np.ndarray):
    from PIL import Image

    return Image.fromarray(array)


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.1f}"


# -- as the pipeline runs it (emojiray.extensions.interface) ---------------------------------------


EXTENSION = Extension(evaluate=lambda run: condition_report(run.paths, run.cfg, run.out, priors=run.label_priors,
                                                            sample_runs=run.sample_runs),
                      needs=("label_priors", "classifier"))
