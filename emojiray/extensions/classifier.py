"""Train, load and apply the emoji classifier (:mod:`emojiray.models.classifier`; pure PyTorch).

Training data are the dataset's train split, model selection on val (the epoch with the best mean
balanced accuracy over the heads), the report on test. Emoji identities never straddle splits, so
held-out accuracy is accuracy on emoji the classifier has never seen drawn by any vendor.

:class:`ClassifierFamily` is the Ray-free part (a :mod:`~emojiray.train.harness` family);
:func:`train_classifier` reads the splits into memory and trains the family through the one Ray
driver (:func:`emojiray.train.driver.fit`), like the tokenizer and the priors. Layout under ``out``::

    meta.json, model.safetensors   the model (the best epoch on val; meta also holds the test metrics)
    classifier.json                held-out test metrics per head, class counts, the training history
    train/                         the Ray Train run: ray/classifier/ checkpoints, tensorboard/, classifier/

Choices, for emoji rather than photographs:

* augmentation is a random shift of up to S/16 pixels (edge pixels repeated: the background). No
  flips: vendors light and draw their emoji with a consistent handedness (highlights top-left,
  profiles facing one way), which is part of what the vendor head should see, and some emoji are
  mirror pairs (arrows, "left-facing fist"). No colour jitter: colour is much of what category and
  vendor mean.
* the emotion label applies to face emoji only; everything else is the class ``none`` (about 96 %
  of the data). Unweighted cross-entropy would learn "always none", so each head weighs its classes
  by 1/sqrt(frequency) (normalised to mean 1 over the training examples), and selection uses
  balanced accuracy (mean per-class recall) rather than accuracy.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from emojiray import storage
from emojiray.config import Config
from emojiray.data.shards import read_arrays
from emojiray.errors import EmojirayError
from emojiray.extensions.helpers import (RUN_DIR, HelperFamily, check_helper_data, fit_helper, load_helper,
                                         publish_model)
from emojiray.extensions.measures import json_safe
from emojiray.images import resize_rgb, to_model_input
from emojiray.models.classifier import EmojiClassifier
from emojiray.train.loop_utils import autocast

KIND = "classifier"
NOTE = ("emotion applies to face emoji only: every other emoji has the emotion 'none', which is a class of "
        "the emotion head like any other")


def label_ids(values: list[str], vocab: list[str], label: str) -> np.ndarray:
    index = {v: i for i, v in enumerate(vocab)}
    unknown = sorted({str(v) for v in values if v not in index})
    if unknown:
        raise EmojirayError(f"{label} value(s) {', '.join(unknown[:5])} are not in the dataset's vocabulary")
    return np.array([index[v] for v in values], dtype=np.int64)


def class_weights(ids: np.ndarray, classes: int) -> torch.Tensor:
    """1/sqrt(count) per class, scaled so the mean weight over the examples is 1 (absent classes: 1)."""
    counts = np.bincount(ids, minlength=classes).astype(np.float64)
    w = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 1.0)
    w /= (w[ids].mean() if len(ids) else 1.0)
    return torch.tensor(w, dtype=torch.float32)


def shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, C, H, W) -> each image moved by its own random (dy, dx) in [-max_shift, max_shift], edges repeated."""
    if max_shift <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    dy, dx = (torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator).to(x.device))
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (B, W)
    out = padded[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()  # advanced indexing put C last: (B, H, W, C) -> NCHW


def head_metrics(probs: np.ndarray, ids: np.ndarray, vocab: list[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy (mean recall over the classes present) and recall per class."""
    if len(ids) == 0:
        return {"images": 0, "accuracy": None, "balanced_accuracy": None, "recall": {}}
    pred = probs.argmax(1)
    recall = {vocab[c]: float((pred[ids == c] == c).mean()) for c in np.unique(ids)}
    return {"images": int(len(ids)), "accuracy": float((pred == ids).mean()),
            "balanced_accuracy": float(np.mean(list(recall.values()))), "recall": recall}


# -- the family (no Ray) ------------------------------------------------------------------------------


class ClassifierFamily(HelperFamily):
    """The classifier as a :mod:`~emojiray.train.harness` family: class-weighted cross-entropy per
    head on randomly shifted images, AdamW; the best checkpoint by ``val_score`` (the mean balanced
    accuracy over the heads on val).

    ``spec``: {"labels", "vocab" ({label: values}), "image_size", "examples" (train images),
    "class_weights" ({label: per-class weights}), "data"}. Batches hold ``image`` (B, H, W, 3)
    uint8 and each label's ids.
    """

    name = KIND
    score = ("val_score", "max")
    batch_key = "classifier.batch_size"  # the config key of the per-worker batch size
    section = "classifier"

    def __init__(self, cfg: Config, spec: dict[str, Any], device: torch.device | str = "cpu", world: int = 1,
                 rank: int = 0):
        self.labels, self.vocab = list(spec["labels"]), spec["vocab"]
        super().__init__(cfg, spec, device, world, rank)
        self.weights = {lb: torch.tensor(spec["class_weights"][lb], dtype=torch.float32, device=self.device)
                        for lb in self.labels}
        self.max_shift = max(1, int(spec["image_size"]) // 16)
        self.generator = torch.Generator().manual_seed(cfg.train.seed + 1000 * rank)  # the shifts

    def build(self, c, spec: dict[str, Any]) -> EmojiClassifier:
        return EmojiClassifier({lb: len(self.vocab[lb]) for lb in self.labels}, channels=c.channels,
                               size=int(spec["image_size"]))

    def examples(self, batch: dict[str, torch.Tensor]) -> int:
        return batch["image"].shape[0]

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # bf16 on GPUs and on CPUs with native bf16: 2.3x the images/s of fp32 on 2 such cores
        with autocast(self.device, True, cpu=True):
            x = shift(to_model_input(batch["image"], self.device, channels_last=False), self.max_shift,
                      self.generator)
            logits = self.net(x)
            loss = sum(F.cross_entropy(logits[lb].float(), batch[lb].to(self.device), weight=self.weights[lb])
                       for lb in self.labels)
        return {"loss": loss}

    def heads(self, batches) -> dict[str, dict[str, Any]]:
        """:func:`head_metrics` of every head over ``batches`` (the model as it is: eval mode, no grad)."""
        probs: dict[str, list[np.ndarray]] = {lb: [] for lb in self.labels}
        ids: dict[str, list[np.ndarray]] = {lb: [] for lb in self.labels}
        for batch in batches:
            x = to_model_input(batch["image"], self.device, channels_last=False)
            for lb, logits in self.model(x).items():
                probs[lb].append(torch.softmax(logits.float(), dim=1).cpu().numpy())
                ids[lb].append(batch[lb].cpu().numpy())
        return {lb: head_metrics(np.concatenate(probs[lb]) if probs[lb] else np.zeros((0, len(self.vocab[lb]))),
                                 np.concatenate(ids[lb]) if ids[lb] else np.zeros(0, np.int64), self.vocab[lb])
                for lb in self.labels}

    def evaluate(self, batches) -> tuple[dict[str, float], None]:
        row = {f"val_{lb}_bacc": h["balanced_accuracy"] for lb, h in self.heads(batches).items()}
        row["val_score"] = float(np.mean(list(row.values())))
        return row, None

    def meta(self) -> dict[str, Any]:
        s = self.spec
        return {"labels": self.labels, "vocab": self.vocab, "image_size": int(s["image_size"]),
                "channels": self.cfg.classifier.channels, "data": s.get("data", "")}


# -- training (the one Ray driver) ---------------------------------------------------------------------


def train_classifier(data_uri: str, out: str, cfg: Config, force: bool = False, log=print) -> dict[str, Any]:
    """Train the classifier on ``data_uri``'s train split through the Ray driver (model selection on
    val); write the model (kind "classifier") to ``out`` and ``out/classifier.json`` (held-out test
    metrics per head, class counts per split, training history); return that report.

    Runs in the driver process (it starts Ray Train): the arrays are read here, the Ray Train run
    lives in ``out/train/`` (see :func:`fit_helper`) and the test split is measured here
    afterwards, on this process's device. A classifier of another dataset at ``out`` is replaced
    only with ``force``."""
    from emojiray.data import shards

    c = cfg.classifier
    manifest = shards.load_manifest(data_uri)
    labels = list(c.labels)
    missing = [lb for lb in labels if lb not in manifest["vocab"]]
    if not labels or missing:
        raise EmojirayError(f"classifier.labels {labels}: the dataset has labels {', '.join(manifest['vocab'])}")
    vocab = {lb: list(manifest["vocab"][lb]) for lb in labels}
    sets = {}
    for split in ("train", "val", "test"):
        images, cols = read_arrays(data_uri, (split,), labels)
        sets[split] = {"image": images, **{lb: label_ids(cols[lb], vocab[lb], lb) for lb in labels}}
    size = int(manifest["image"]["height"])
    n_train = len(sets["train"]["image"])
    check_helper_data("classifier", c, n_train, len(sets["val"]["image"]), data_uri)
    EmojiClassifier({lb: len(vocab[lb]) for lb in labels}, channels=c.channels, size=size)  # errors before Ray
    storage.claim_output(out, "classifier.json", {"data": data_uri}, force)
    spec = {"labels": labels, "vocab": vocab, "image_size": size, "examples": n_train, "data": data_uri,
            "class_weights": {lb: class_weights(sets["train"][lb], len(vocab[lb])).tolist() for lb in labels}}
    t0 = time.perf_counter()
    run = fit_helper(ClassifierFamily, cfg, spec, sets["train"], sets["val"], out, log=log,
                     describe=f"{'/'.join(labels)} heads on {n_train} images, {c.epochs} epoch(s)")
    seconds = time.perf_counter() - t0
    model, _ = load_classifier(run["model"])
    test = {lb: head_metrics(probs, sets["test"][lb], vocab[lb])
            for lb, probs in predict(model, sets["test"]["image"]).items()}
    counts = {lb: {split: {vocab[lb][i]: int(n) for i, n in enumerate(np.bincount(s[lb], minlength=len(vocab[lb])))
                           if n} for split, s in sets.items()} for lb in labels}
    summary, meta = run["summary"], run["meta"]
    history = summary.get("history", [])
    max_shift = max(1, size // 16)
    report = json_safe({"data": data_uri, "labels": labels, "image_size": size,
                        "device": "cuda" if run["use_gpu"] else "cpu", "workers": run["workers"],
                        "seconds": seconds, "train_seconds": summary.get("train_seconds"),
                        "epochs_run": len(history), "best_epoch": meta["epoch"], "val": meta.get("metrics", {}),
                        "augmentation": f"random shift up to {max_shift} px, no flips", "note": NOTE,
                        "test": test, "class_counts": counts, "history": history,
                        "run": storage.join(out, RUN_DIR)})
    publish_model(run["model"], out, KIND, test=report["test"])
    storage.write_json(storage.join(out, "classifier.json"), report)
    shown = ", ".join(f"{lb} {h['accuracy']:.3f} (balanced {h['balanced_accuracy']:.3f})"
                      for lb, h in report["test"].items() if h["accuracy"] is not None)
    log(f"classifier: {seconds:.0f} s, best epoch {meta['epoch']}, held-out accuracy "
        f"{shown or 'n/a (no test images)'} -> {out}")
    return report


def load_classifier(uri: str, device=None) -> tuple[EmojiClassifier, dict[str, Any]]:
    """(model in eval mode on ``device``, checkpoint meta with "labels", "vocab", "image_size")."""
    def build(meta, cfg):
        return EmojiClassifier({lb: len(meta["vocab"][lb]) for lb in meta["labels"]},
                               channels=int(meta.get("channels", cfg.classifier.channels)), size=int(meta["image_size"]))

    return load_helper(uri, KIND, "train-classifier", "--classifier", build, device)


@torch.no_grad()
def predict(model: EmojiClassifier, images: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """(N, H, W, 3) uint8 -> {label: (N, C_label) float32 class probabilities}; other sizes are resized."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise EmojirayError(f"the classifier wants (N, H, W, 3) uint8 images, got shape {images.shape}")
    if images.shape[1] != model.size:
        images = np.stack([resize_rgb(im, model.size) for im in images]) if len(images) else \
            np.zeros((0, model.size, model.size, 3), np.uint8)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: dict[str, list[np.ndarray]] = {lb: [] for lb in model.labels}
    for s in range(0, len(images), batch_size):
        x = to_model_input(torch.from_numpy(np.ascontiguousarray(images[s:s + batch_size])), device,
                           channels_last=False)
        for lb, logits in model(x).items():
            out[lb].append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    model.train(was_training)
    return {lb: np.concatenate(v) if v else np.zeros((0, model.heads[lb].out_features), np.float32)
            for lb, v in out.items()}
