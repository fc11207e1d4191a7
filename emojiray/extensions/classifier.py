"""Train, load and apply the emoji classifier (:mod:`emojiray.models.classifier`; pure PyTorch).

Training data are the dataset's train split, model selection on val (the epoch with the best mean
balanced accuracy over the heads), the report on test. Emoji identities never straddle splits, so
held-out accuracy is accuracy on emoji the classifier has never seen drawn by any vendor.

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

import tempfile
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from emojiray import storage
from emojiray.config import Config, config_from_dict
from emojiray.errors import EmojirayError
from emojiray.extensions.common import default_device, json_safe, read_images, require_model
from emojiray.images import resize_rgb, to_model_input
from emojiray.models.classifier import EmojiClassifier
from emojiray.models import checkpoint as ckpt

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


def train_classifier(data_uri: str, out: str, cfg: Config, device=None, log=print) -> dict[str, Any]:
    """Train the classifier on ``data_uri``'s train split; write the checkpoint (kind "classifier") to
    ``out`` and ``out/classifier.json`` (held-out test metrics per head, class counts per split,
    training history); return that report."""
    from emojiray.data import shards
    from emojiray.extensions.trainer import fit

    c = cfg.classifier
    device = torch.device(device) if device else default_device()
    manifest = shards.load_manifest(data_uri)
    labels = list(c.labels)
    missing = [lb for lb in labels if lb not in manifest["vocab"]]
    if not labels or missing:
        raise EmojirayError(f"classifier.labels {labels}: the dataset has labels {', '.join(manifest['vocab'])}")
    vocab = {lb: list(manifest["vocab"][lb]) for lb in labels}
    sets = {}
    for split in ("train", "val", "test"):
        images, cols = read_images(data_uri, (split,), labels)
        sets[split] = {"image": images, **{lb: label_ids(cols[lb], vocab[lb], lb) for lb in labels}}
    size = int(manifest["image"]["height"])
    if len(sets["train"]["image"]) == 0:
        raise EmojirayError(f"the dataset at {data_uri} has no training images")
    torch.manual_seed(cfg.train.seed)
    model = EmojiClassifier({lb: len(vocab[lb]) for lb in labels}, channels=c.channels, size=size).to(device)
    weights = {lb: class_weights(sets["train"][lb], len(vocab[lb])).to(device) for lb in labels}
    max_shift = max(1, size // 16)
    aug = torch.Generator().manual_seed(cfg.train.seed)

    def loss_fn(m, batch):
        x = shift(to_model_input(batch["image"], channels_last=False), max_shift, aug)
        logits = m(x)
        return sum(F.cross_entropy(logits[lb].float(), batch[lb], weight=weights[lb]) for lb in labels)

    def evaluate(split: str) -> dict[str, dict[str, Any]]:
        probs = predict(model, sets[split]["image"])
        return {lb: head_metrics(probs[lb], sets[split][lb], vocab[lb]) for lb in labels}

    def validate(m) -> dict[str, float]:
        heads = evaluate("val")
        row = {f"val_{lb}_bacc": h["balanced_accuracy"] for lb, h in heads.items()}
        row["val_score"] = float(np.mean(list(row.values())))
        return row

    has_val = len(sets["val"]["image"]) > 0
    t0 = time.perf_counter()
    history = fit(model, loss_fn, sets["train"], epochs=c.epochs, batch_size=c.batch_size, lr=c.lr,
                  weight_decay=c.weight_decay, max_seconds=c.max_seconds, device=device,
                  validate=validate if has_val else None, score="val_score" if has_val else "",
                  seed=cfg.train.seed, label="classifier", log=log)
    seconds = time.perf_counter() - t0
    test = evaluate("test")
    counts = {lb: {split: {vocab[lb][i]: int(n) for i, n in enumerate(np.bincount(s[lb], minlength=len(vocab[lb])))
                           if n} for split, s in sets.items()} for lb in labels}
    best = max(history, key=lambda r: r.get("val_score", r["epoch"])) if history else {}
    report = json_safe({"data": data_uri, "labels": labels, "image_size": size, "device": str(device),
                        "seconds": seconds, "epochs_run": len(history), "best_epoch": best.get("epoch"),
                        "augmentation": f"random shift up to {max_shift} px, no flips", "note": NOTE,
                        "test": test, "class_counts": counts, "history": history})
    with tempfile.TemporaryDirectory(prefix="emojiray-classifier-") as d:
        ckpt.save(d, model, KIND, cfg.to_dict(), labels=labels, vocab=vocab, image_size=size,
                  channels=c.channels, test=report["test"], data=data_uri)
        ckpt.export(d, out)
    storage.write_json(storage.join(out, "classifier.json"), report)
    shown = ", ".join(f"{lb} {h['accuracy']:.3f} (balanced {h['balanced_accuracy']:.3f})"
                      for lb, h in report["test"].items() if h["accuracy"] is not None)
    log(f"classifier: {seconds:.0f} s, held-out accuracy {shown or 'n/a (no test images)'} -> {out}")
    return report


def load_classifier(uri: str, device=None) -> tuple[EmojiClassifier, dict[str, Any]]:
    """(model in eval mode on ``device``, checkpoint meta with "labels", "vocab", "image_size")."""
    require_model(uri, "classifier", "train-classifier", "--classifier")
    with ckpt.LocalCopy(uri) as d:
        meta = ckpt.read_meta(d, kind=KIND)
        cfg = config_from_dict(meta["config"])
        classes = {lb: len(meta["vocab"][lb]) for lb in meta["labels"]}
        model = EmojiClassifier(classes, channels=int(meta.get("channels", cfg.classifier.channels)),
                                size=int(meta["image_size"]))
        ckpt.load_weights(d, model)
    return model.to(torch.device(device) if device else default_device()).eval(), meta


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
