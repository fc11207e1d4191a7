"""Conditional generation: the emoji classifier learns (trained through the Ray driver: the tests
marked ray), agreement counts what it should, the report's sheets and JSON, and one-line errors
(the rest: pure PyTorch, no Ray)."""

from __future__ import annotations

import csv
import json
import tempfile

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from emojiray import storage
from emojiray.cli import build_parser
from emojiray.config import DataConfig, load_config
from emojiray.data import shards
from emojiray.data.prepare import prepare
from emojiray.errors import EmojirayError
from emojiray.extensions.classifier import KIND, load_classifier, predict, shift, train_classifier
from emojiray.extensions.condition import agreement, condition_report
from emojiray.extensions.paths import RunPaths
from emojiray.generate.sample_run import FORMAT, samples_table, table_bytes
from emojiray.models import checkpoint as ckpt
from emojiray.models.classifier import EmojiClassifier
from helpers import tiny_pair

QUIET = dict(log=lambda *_: None)
PARAMS = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "guidance": 1.0, "maskgit_steps": 4}


def thumbnail(images):
    """Cheap deterministic features instead of Inception: 4x4 block means (48-d)."""
    x = torch.from_numpy(np.asarray(images)).float().permute(0, 3, 1, 2)
    return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1).numpy()


def toy_folder(root, per_vendor: int = 48):
    """Two 'vendors' drawn differently (discs vs squares), two categories by colour (warm vs cool)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    rows = []
    for vendor in ("discs", "squares"):
        for i in range(per_vendor):
            warm = i % 2 == 0
            colour = (int(rng.integers(180, 256)), int(rng.integers(0, 90)), int(rng.integers(0, 60))) if warm else \
                (int(rng.integers(0, 60)), int(rng.integers(0, 90)), int(rng.integers(180, 256)))
            img = Image.new("RGB", (64, 64), "white")
            d = ImageDraw.Draw(img)
            m = int(rng.integers(4, 14))
            box = [m + int(rng.integers(-3, 4)), m + int(rng.integers(-3, 4)), 64 - m, 64 - m]
            (d.ellipse if vendor == "discs" else d.rectangle)(box, fill=colour)
            name = f"{vendor}_{i:03d}.png"
            img.save(root / name)
            rows.append({"file": name, "vendor": vendor, "category": "warm" if warm else "cool", "emotion": "none"})
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.fixture(scope="module")
def toy_classifier(ray_local):
    """(dataset URI, classifier URI, report) of a classifier trained on the toy folder (Ray Train)."""
    with tempfile.TemporaryDirectory() as tmp:
        from pathlib import Path

        root = Path(tmp)
        toy_folder(root / "toy")
        data = str(root / "toy-ds")
        prepare(DataConfig(source=f"folder:{root / 'toy'}", size=32, val_fraction=0.2, test_fraction=0.25),
                data, log=lambda *_: None)
        # batches of 8: the vendor head (a shape) learns on every seed and thread count tried, not only on some
        cfg = load_config("smoke", ["classifier.channels=8", "classifier.epochs=12", "classifier.batch_size=8",
                                    "classifier.lr=3e-3"])
        out = str(root / "clf")
        report = train_classifier(data, out, cfg, **QUIET)
        yield data, out, report


@pytest.mark.ray
def test_classifier_learns_a_separable_toy_set(toy_classifier):
    data, out, report = toy_classifier
    test = report["test"]
    assert test["vendor"]["images"] >= 16
    assert test["vendor"]["accuracy"] >= 0.8, "discs vs squares is easy: far better than chance (0.5)"
    assert test["category"]["accuracy"] >= 0.8, "warm vs cool is easy: far better than chance (0.5)"
    saved = json.loads(storage.read_text(storage.join(out, "classifier.json")))
    assert saved["test"]["vendor"]["accuracy"] == test["vendor"]["accuracy"]
    assert "none" in saved["note"] and saved["class_counts"]["vendor"]["train"]["discs"] > 0
    assert "no flips" in saved["augmentation"]
    assert saved["best_epoch"] >= 1 and len(saved["history"]) == 12
    # the model at out is the best epoch on val (Ray Train's run beside it, under out/train)
    best = max(saved["history"], key=lambda r: r["val_score"])
    assert saved["val"]["val_score"] == pytest.approx(best["val_score"], abs=1e-4)
    assert storage.list_files(storage.join(out, "train", "ray", KIND))
    assert storage.exists(storage.join(out, "train", KIND, "meta.json"))


@pytest.mark.ray
def test_load_and_predict_shapes(toy_classifier):
    data, out, _ = toy_classifier
    model, meta = load_classifier(out, "cpu")
    assert meta["labels"] == ["emotion", "category", "vendor"] and meta["vocab"]["vendor"] == ["discs", "squares"]
    assert meta["kind"] == KIND and meta["test"]["vendor"]["accuracy"] is not None and meta["data"] == data
    for size in (32, 64):  # another size is resized to the classifier's
        images = np.random.default_rng(0).integers(0, 256, (5, size, size, 3), dtype=np.uint8)
        probs = predict(model, images)
        assert {k: v.shape for k, v in probs.items()} == {"emotion": (5, len(meta["vocab"]["emotion"])),
                                                         "category": (5, 2), "vendor": (5, 2)}
        assert np.allclose(probs["vendor"].sum(1), 1, atol=1e-5)
    assert predict(model, np.zeros((0, 32, 32, 3), np.uint8))["vendor"].shape == (0, 2)
    assert model.features(torch.zeros(2, 3, 32, 32)).shape == (2, model.feature_dim)
    with pytest.raises(EmojirayError, match="no classifier at"):
        load_classifier(str(storage.join(out, "missing")), "cpu")


def test_classifier_works_at_64_px_and_refuses_other_sizes():
    m = EmojiClassifier({"a": 3}, channels=8, size=64)
    assert m(torch.zeros(2, 3, 64, 64))["a"].shape == (2, 3)
    with pytest.raises(ValueError, match="power-of-two"):
        EmojiClassifier({"a": 3}, channels=8, size=48)


def test_shift_moves_pixels_and_repeats_edges():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(8, 3, 1, 1)
    y = shift(x, 1, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.equal(y, x)
    assert torch.equal(shift(x, 0), x)
    # every output is the input moved by at most 1 pixel: its values are a sub-grid of the padded input
    padded = torch.nn.functional.pad(x[:1], (1, 1, 1, 1), mode="replicate")[0, 0]
    windows = {tuple(padded[i:i + 4, j:j + 4].flatten().tolist()) for i in range(3) for j in range(3)}
    assert all(tuple(y[b, c].flatten().tolist()) in windows for b in range(8) for c in range(3))


def test_agreement_counts_the_requested_class():
    sure = np.eye(4)[[2, 2, 2, 2]]
    assert agreement(sure, 2) == 1.0 and agreement(sure, 1) == 0.0
    assert agreement(np.eye(4)[[2, 1, 2, 0]], 2) == 0.5
    assert agreement(np.zeros((0, 4)), 1) is None


# -- the report on tiny random models ---------------------------------------------------------------


@pytest.fixture
def tiny_data(npm_cache, tmp_path):
    uri = str(tmp_path / "ds")
    prepare(DataConfig(npm_version="0.0.0-test", size=32, val_fraction=0.2, test_fraction=0.2), uri,
            log=lambda *_: None)
    return uri


def fake_classifier(uri: str, data_uri: str, says: str) -> str:
    """A classifier checkpoint whose emotion head always answers ``says`` (random elsewhere)."""
    vocab = {lb: list(shards.load_manifest(data_uri)["vocab"][lb]) for lb in ("emotion", "category", "vendor")}
    torch.manual_seed(0)
    model = EmojiClassifier({lb: len(v) for lb, v in vocab.items()}, channels=8, size=32)
    with torch.no_grad():
        model.heads["emotion"].weight.zero_()
        model.heads["emotion"].bias.fill_(-10.0)
        model.heads["emotion"].bias[vocab["emotion"].index(says)] = 10.0
    ckpt.save(uri, model, KIND, load_config("smoke").to_dict(), labels=list(vocab), vocab=vocab, image_size=32,
              channels=8)
    return uri


def fake_sample_run(uri: str, n: int = 12) -> str:
    """A hand-made `emojiray sample` run of random images asking for emotion=happy/sad in turn."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    codes = {"top": rng.integers(0, 16, (n, 4, 4)), "bottom": rng.integers(0, 32, (n, 8, 8))}
    values = ["happy", "sad", "none"]
    storage.write_bytes(storage.join(uri, "shards/samples-00000.parquet"),
                        table_bytes(samples_table(0, images, codes, np.arange(n) % 2, values, 0, PARAMS)))
    storage.write_json(storage.join(uri, "manifest.json"), {
        "format": FORMAT, "kind": "maskgit", "prior": "none", "vqvae": "none", "count": n, "image_size": 32,
        "levels": ["top", "bottom"], "grids": {"top": [4, 4], "bottom": [8, 8]}, "params": PARAMS,
        "condition": {"name": "emotion", "mode": "all", "value": None}, "created": "now",
        "files": [{"path": "shards/samples-00000.parquet", "rows": n, "start": 0}]})
    return uri


def test_condition_report_writes_sheets_and_metrics(tiny_data, tmp_path):
    prior, _ = tiny_pair(tmp_path, "maskgit", condition="emotion")
    clf = fake_classifier(str(tmp_path / "clf"), tiny_data, says="happy")
    runs = {"maskgit": fake_sample_run(str(tmp_path / "samples"))}
    cfg = load_config("smoke", ["extensions.condition_samples=6", "eval.min_condition_images=2"])
    out = tmp_path / "ext"
    r = condition_report(RunPaths(data=tiny_data, classifier=clf), cfg, str(out), priors=[prior],
                         sample_runs=runs, features=thumbnail, **QUIET)
    p = r["priors"]["maskgit_emotion"]
    assert list(p["values"]) == ["happy", "sad"], "'none' and values without training examples are skipped"
    # the fake classifier always says happy: full agreement for happy, none for sad
    assert p["values"]["happy"]["agreement"] == 1.0 and p["values"]["sad"]["agreement"] == 0.0
    assert p["mean_agreement"] == 0.5 and p["chance_agreement"] == 0.5
    assert p["values"]["happy"]["inception_score"] == pytest.approx(1.0, abs=1e-3), "one class only: IS 1"
    assert p["values"]["happy"]["predicted"] == {"happy": 1.0}
    assert p["values"]["happy"]["real_images"] >= 2 and p["values"]["happy"]["fid"] >= 0
    for name in ("condition_emotion.png", "condition_emotion_happy.png", "condition_emotion_sad.png",
                 "condition.json"):
        assert (out / name).stat().st_size > 0
    sheet = Image.open(out / "condition_emotion.png")
    assert sheet.height > 2 * 32, "one row per value"
    assert not (out / "condition_emotion_none.png").exists()
    saved = json.loads((out / "condition.json").read_text())
    assert "no classifier head" in saved["note"]
    real = saved["real"]["heads"]
    assert set(real) == {"emotion", "category", "vendor"} and real["vendor"]["images"] > 0
    assert real["emotion"]["accuracy"] is not None and real["vendor"]["inception_score"] >= 1.0
    run = saved["sample_runs"]["maskgit"]
    assert run["images"] == 12 and run["agreement"] == 0.5  # half the run asked for happy
    assert run["heads"]["emotion"]["inception_score"] == pytest.approx(1.0, abs=1e-3)
    assert saved["summary"]["mean_agreement"] == {"maskgit_emotion": 0.5}
    assert set(saved["summary"]["inception_score"]) == {"real", "maskgit"}


def test_condition_report_one_line_errors(tiny_data, tmp_path):
    prior, _ = tiny_pair(tmp_path, "maskgit", condition="emotion")
    cfg = load_config("smoke", ["extensions.condition_samples=2"])
    missing = str(tmp_path / "no-classifier")
    with pytest.raises(EmojirayError, match="no classifier at"):
        condition_report(RunPaths(data=tiny_data, classifier=missing), cfg, str(tmp_path / "o"), priors=[prior],
                         features=thumbnail, **QUIET)
    clf = fake_classifier(str(tmp_path / "clf"), tiny_data, says="sad")
    plain, _ = tiny_pair(tmp_path, "maskgit", condition="none")
    with pytest.raises(EmojirayError, match="unconditional"):
        condition_report(RunPaths(data=tiny_data, classifier=clf), cfg, str(tmp_path / "o"), priors=[plain],
                         features=thumbnail, **QUIET)
    # the CLI refuses before starting Ray
    out = ["--out", str(tmp_path / "o")]
    for argv, message in ((["condition", "--data", tiny_data, "--classifier", missing, "--prior", prior, *out],
                           "no classifier at"),
                          (["condition", "--data", tiny_data, "--classifier", clf, *out], "no prior"),
                          (["condition", "--data", tiny_data, "--classifier", clf, "--prior", prior, "--samples",
                            "oops", *out], "KIND=URI"),
                          (["condition", "--classifier", clf, "--prior", prior, *out], "no data"),
                          (["train-classifier"], "give --data")):
        args = build_parser().parse_args(argv)
        with pytest.raises(EmojirayError, match=message):
            args.func(args)
