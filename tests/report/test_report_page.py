"""`emojiray report`: the static results page, built from a small synthetic run folder and checked
in headless Chromium (every image loads, every table is filled); a screenshot is kept.

The screenshot goes to ``$EMOJIRAY_ARTIFACTS/report/report.png`` when that variable is set,
otherwise into the test's tmp folder; its path is printed (``pytest -s`` shows it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emojiray.errors import EmojirayError
from emojiray.report import build_report
from emojiray.report.events import parse_scalars, read_scalars

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _png(path: Path, w: int, h: int, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def _gif(path: Path, side: int = 32) -> None:
    frames = [Image.new("RGB", (side, side), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _history(keys: dict[str, list[float]]) -> list[dict]:
    n = len(next(iter(keys.values())))
    return [{"epoch": float(i + 1), "step": float(10 * (i + 1)), **{k: v[i] for k, v in keys.items()}} for i in range(n)]


def make_run(root: Path) -> Path:
    """A pipeline run with two of three priors, one extension, TensorBoard events for the tokenizer."""
    run = root / "run"
    _json(run / "pipeline.json", {
        "emojiray_version": "0.1.0", "out": str(run), "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T00:10:00+00:00",
        "config": {"data": {"size": 32, "source": "npm:google,twitter"},
                   "model": {"arch": "vqvae2", "channels": 64, "codebook_size": [128, 64], "code_dim": [32, 32],
                             "beta": 0.25},
                   "pipeline": {"priors": ["pixelsnail", "transformer", "maskgit"]}},
        "stages": {"prepare": {"uri": "x", "images": 100, "seconds": 0.5},
                   "train_vqvae": {"model": "m", "skipped": True, "seconds": 0.0},
                   "eval_vqvae": {"psnr": 18.0, "ssim": 0.55, "seconds": 12.0}}})
    _json(run / "data_summary.json", {
        "image": "32x32 RGB uint8",
        "sources": [{"kind": "npm", "vendor": "google", "package": "emoji-datasource-google", "version": "16.0.0",
                     "sha1": "abc", "license": "Apache-2.0"}],
        "counts": {"inputs": 110, "total": 100, "skipped": 0, "duplicates_removed": 10, "emoji_ids": 50,
                   "split": {"train": 80, "val": 10, "test": 10}, "vendor": {"google": 100},
                   "category": {"Objects": 60, "Flags": 40}, "emotion": {"none": 90, "happy": 10}},
        "shards": 1, "bytes": 12345})
    _png(run / "data_contact_category.png", 300, 120, 1)
    tb = run / "tokenizer" / "tensorboard"
    from tensorboardX import SummaryWriter

    w = SummaryWriter(str(tb))
    for step in range(1, 31):
        w.add_scalar("train/loss", 1.0 / step, step)
        w.add_scalar("train/lr", 1e-3, step)
    for step in (10, 20, 30):
        w.add_scalar("val/val_psnr", 10 + step / 5, step)
    w.close()
    _json(run / "tokenizer" / "train_vqvae.json", {
        "model": "m", "workers": 1, "use_gpu": False, "wall_seconds": 60.0, "step": 30, "epoch": 3,
        "metrics": {"images_per_s": 250.0, "val_psnr": 16.0},
        "history": _history({"train_loss": [0.3, 0.1, 0.08], "val_psnr": [12.0, 14.0, 16.0],
                             "val_ssim": [0.3, 0.4, 0.5], "codes_used_top": [30.0, 50.0, 60.0],
                             "codes_used_bottom": [100.0, 120.0, 125.0], "images_per_s": [200.0, 230.0, 250.0]})})
    _json(run / "eval_vqvae.json", {
        "split": "test", "images": 10, "device": "cpu", "date": "2026-01-01", "mse": 0.07, "psnr": 18.0,
        "ssim": 0.55, "rfid": 350.0, "rfid_images": 10, "bits_per_image": 544.0,
        "entropy_coded_bits_per_image": 497.0,
        "levels": {"top": {"codebook_size": 64, "grid": [4, 4], "codes_used": 61, "perplexity": 45.6,
                           "kl_uniform_nats": 0.34, "entropy_bits": 5.5},
                   "bottom": {"codebook_size": 128, "grid": [8, 8], "codes_used": 125, "perplexity": 84.0,
                              "kl_uniform_nats": 0.42, "entropy_bits": 6.4}},
        "codes_used": {"top": 61, "bottom": 125}})
    _png(run / "recon_grid.png", 200, 40, 2)
    for i, kind in enumerate(("pixelsnail", "maskgit")):  # no transformer: it must be listed as missing
        _json(run / f"prior_{kind}" / "train_prior.json", {
            "kind": kind, "condition": "emotion", "best_epoch": 2, "metrics": {"val_bits_per_code": 5.0},
            "history": _history({"train_bits_per_code": [6.0, 5.5], "val_bits_per_code": [5.5, 5.0],
                                 "val_accuracy": [0.1, 0.2]})})
        _png(run / f"samples_{kind}.png", 140, 36, 3 + i)
        _json(run / f"samples_{kind}" / "eval_samples.json", {
            "count": 16, "image_size": 32, "condition": {"name": "emotion", "mode": "data", "value": None},
            "samples_per_s": 20.0 + i, "sample_device": "cpu", "real_images": {"heldout": 32, "train": 32},
            "fid": 400.0, "fid_train": 390.0, "kid": 0.3, "precision": 0.0, "recall": 0.0, "memorized_share": 0.0,
            "real_vs_real_fid": 120.0, "diversity": {"distinct_share": 1.0},
            "per_condition": {"name": "emotion", "values": {"none": {"samples": 12, "real_train": 30,
                                                                     "fid_train": 410.0, "real_heldout": 30,
                                                                     "fid_heldout": None}}}})
        _png(run / f"samples_{kind}" / "samples_grid.png", 140, 140, 5 + i)
    ext = run / "extensions"
    _json(ext / "inpaint.json", {
        "extension": "inpaint", "device": "cpu", "images": 8, "note": "PSNR/SSIM on the hidden box",
        "methods": {"maskgit": {"psnr": 10.0, "ssim": 0.07}, "naive_fill": {"psnr": 15.0, "ssim": 0.32}},
        "vs_naive_fill": {"maskgit": {"psnr_db": -5.0, "ssim": -0.25}}})
    _png(ext / "inpaint.png", 300, 100, 7)
    _gif(ext / "inpaint_demo.gif")
    (ext / "classifier").mkdir()
    _json(ext / "classifier" / "meta.json", {"not": "an extension"})
    return run


def make_tune(root: Path) -> Path:
    tune = root / "tune"
    rows = [{"trial_id": "a", "status": "TERMINATED", "model.codebook_size": 64, "bits_per_image": 500.0,
             "entropy_bits_per_image": 400.0, "val_psnr": 17.0, "val_ssim": 0.5, "on_front": "yes"},
            {"trial_id": "b", "status": "STOPPED_EARLY", "model.codebook_size": 32, "bits_per_image": 300.0,
             "entropy_bits_per_image": 250.0, "val_psnr": 14.0, "val_ssim": 0.3, "on_front": "no"}]
    tune.mkdir(parents=True)
    with open(tune / "trials.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _json(tune / "sweep_summary.json", {
        "front": ["a"], "counts": {"TERMINATED": 1, "STOPPED_EARLY": 1},
        "best_per_budget": [{"budget_bits": 500, "trial_id": "a", "params": {"model.codebook_size": 64},
                             "metrics": {"bits_per_image": 500.0, "val_psnr": 17.0}, "preset": "presets/best_500bits.yaml"}]})
    _png(tune / "pareto.png", 200, 150, 9)
    return tune


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    run, tune = make_run(root), make_tune(root)
    bench = root / "bench"
    _json(bench / "sampling_speed.json", {"benchmark": "sampling_speed", "device": "cpu", "command": "python x",
                                          "results": [{"prior": "maskgit", "batch_size": 8, "samples_per_s": 50.0}]})
    logs: list[str] = []
    index = build_report(str(run), str(root / "site"), tune_uri=str(tune), bench_uri=str(bench), log=logs.append)
    return Path(index), logs


def test_report_in_headless_chromium(built):
    index, _ = built
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found (Debian: apt-get install chromium; `make test` installs it)")
    from playwright.sync_api import sync_playwright

    artifacts = os.environ.get("EMOJIRAY_ARTIFACTS")
    shot = Path(artifacts) / "report" / "report.png" if artifacts else index.parent / "report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(index.as_uri())
            page.wait_for_load_state("load")
            state = page.evaluate("""() => ({
                images: [...document.images].map(i => ({src: i.getAttribute('src'), complete: i.complete,
                                                       width: i.naturalWidth})),
                tables: [...document.querySelectorAll('table')].map(t => ({
                    rows: t.tBodies.length ? t.tBodies[0].rows.length : 0,
                    cells: [...t.querySelectorAll('td')].length,
                    empty: [...t.querySelectorAll('td')].filter(td => !td.textContent.trim()).length})),
                text: document.body.innerText})""")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    print(f"report screenshot: {shot}")
    assert shot.stat().st_size > 10_000
    images = state["images"]
    # data sheet, recon grid, 2 sample sheets + 2 grids, 2 extension images, tune pareto; plots: tokenizer
    # curves, codebook usage, 2 prior curves, rate-distortion
    assert len(images) >= 14, images
    broken = [i for i in images if not i["complete"] or i["width"] == 0]
    assert not broken, broken
    assert all(not i["src"].startswith(("/", "file:", "http")) for i in images), "links must be relative"
    assert len(state["tables"]) >= 10
    for t in state["tables"]:
        assert t["rows"] > 0 and t["cells"] > 0 and t["empty"] == 0, t
    text = state["text"]
    assert "not in this run" in text
    assert "transformer sample metrics" in text  # the prior the run lacks
    assert "extension upscale: not in this run" in text
    assert "Problems while reading" not in text
    for number in ("3,054", "25.3", "164.9", "14.6", "≥ 30,000"):  # the baselines and targets
        assert number in text


def test_report_files_and_curve_sources(built):
    index, logs = built
    page = index.read_text()
    parser = _Page()
    parser.feed(page)
    for src in parser.imgs:
        assert (index.parent / src).is_file(), src
    names = {p.name for p in (index.parent / "images").iterdir()}
    assert {"tokenizer_curves.png", "codebook_usage.png", "rate_distortion.png", "prior_maskgit_curves.png",
            "recon_grid.png", "samples_maskgit__samples_grid.png", "ext_inpaint_demo.gif", "tune_pareto.png"} <= names
    # tokenizer curves: events first, the JSON history for what the events lack (SSIM, codes used)
    assert "from TensorBoard events (tensorboard/) and the per-epoch history" in page
    assert "prior_maskgit_curves.png" in page and "meta.json" not in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert any("-> " in line and "index.html" in line for line in logs)


def test_page_text_is_escaped(tmp_path):
    """Markup in the run's files (an extension's note, an extension name, a prior kind, a benchmark
    command) is shown as text by the template's autoescaping, never as tags."""
    run = make_run(tmp_path)
    pipeline = json.loads((run / "pipeline.json").read_text())
    pipeline["config"]["pipeline"]["priors"].append("<b>bold</b>")
    (run / "pipeline.json").write_text(json.dumps(pipeline))
    _json(run / "extensions" / "inpaint.json", {"note": "<script>alert('x')</script> & more"})
    _json(run / "extensions" / "<img src=x>.json", {"images": 1})
    bench = tmp_path / "bench"
    _json(bench / "b.json", {"benchmark": "<i>speed</i>", "command": "python -c '<x>' && echo"})
    index = build_report(str(run), str(tmp_path / "site"), bench_uri=str(bench), log=lambda *a: None)
    page = Path(index).read_text()
    assert "<script" not in page and "<b>" not in page and "<img src=x>" not in page and "<i>speed" not in page
    for shown in ("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more", "&lt;b&gt;bold&lt;/b&gt;",
                  "&lt;img src=x&gt;", "&lt;i&gt;speed&lt;/i&gt;", "python -c &#39;&lt;x&gt;&#39; &amp;&amp; echo"):
        assert shown in page, shown
    parser = _Page()
    parser.feed(page)
    assert all(src.startswith("images/") for src in parser.imgs)  # the extension name made no <img>


def test_templates_ship_with_the_package():
    """The templates are package data: found through importlib.resources, as from an installed
    package, and named in pyproject.toml's package-data."""
    import importlib.resources

    import jinja2

    from emojiray.report import markup

    templates = importlib.resources.files("emojiray.report") / "templates"
    for name in (markup.TEMPLATE, "blocks.html.j2", "report.css"):
        assert (templates / name).is_file(), name
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"report/templates/*"' in pyproject
    env = markup.environment()
    assert env.autoescape is True and env.undefined is jinja2.StrictUndefined


def test_event_reader_merges_files_and_tolerates_truncation(tmp_path):
    from tensorboardX import SummaryWriter

    for start in (0, 5):  # a resumed run: a second file repeating steps 5..9
        w = SummaryWriter(str(tmp_path), filename_suffix=f".{start}")
        for step in range(start, start + 10):
            w.add_scalar("train/loss", float(start * 100 + step), step)
        w.close()
    series = read_scalars(str(tmp_path))
    steps = [s for s, _ in series["train/loss"]]
    assert steps == sorted(set(steps)) and len(steps) == 15
    files = sorted(tmp_path.iterdir())
    data = files[0].read_bytes()
    whole = parse_scalars(data)["train/loss"]
    cut = parse_scalars(data[:-7])["train/loss"]
    assert len(cut) == len(whole) - 1
    assert read_scalars(str(tmp_path / "nothing")) == {}


def test_partial_run_degrades_gracefully(tmp_path):
    run = tmp_path / "run"
    _json(run / "eval_vqvae.json", {"psnr": 17.0, "ssim": 0.5})
    (run / "tokenizer").mkdir()
    (run / "tokenizer" / "train_vqvae.json").write_text('{"model": "m", "hist')  # cut mid-write
    index = build_report(str(run), str(tmp_path / "out"), log=lambda *a: None)
    page = Path(index).read_text()
    for what in ("pipeline.json", "data statistics", "contact sheets", "a tune sweep", "extensions",
                 "benchmarks", "reconstruction grid", "priors"):
        assert what in page, what
    assert "Problems while reading the run" in page and "train_vqvae.json" in page
    assert '<td class="n">17</td>' in page  # what is there is still shown


def test_cli(tmp_path, capsys):
    from emojiray.cli import report

    parser = argparse.ArgumentParser(prog="emojiray")
    report.register(parser.add_subparsers(dest="command"))
    empty = tmp_path / "empty"
    empty.mkdir()
    for bad in (empty, tmp_path / "absent"):
        args = parser.parse_args(["report", "--run", str(bad)])
        with pytest.raises(EmojirayError, match="pipeline"):
            args.func(args)
    run = tmp_path / "run"
    _json(run / "pipeline.json", {"config": {}, "stages": {}})
    args = parser.parse_args(["report", "--run", str(run), "-q"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(run / "report" / "index.html") and os.path.isfile(out)
    args = parser.parse_args(["report", "--run", str(run), "--tune", str(tmp_path / "no_sweep")])
    with pytest.raises(EmojirayError, match="tune folder"):
        args.func(args)


def test_report_from_and_to_s3(s3, tmp_path):
    from emojiray import storage

    run = make_run(tmp_path)
    keep = ("pipeline.json", "eval_vqvae.json", "recon_grid.png", "tokenizer")  # enough to read every kind of file
    for path in run.rglob("*"):
        if path.is_file() and path.relative_to(run).parts[0] in keep:
            storage.write_bytes(storage.join(s3, "run", *path.relative_to(run).parts), path.read_bytes())
    index = build_report(storage.join(s3, "run"), log=lambda *a: None)
    assert index == storage.join(s3, "run", "report", "index.html")
    parser = _Page()
    parser.feed(storage.read_text(index))
    written = {storage.basename(u) for u in storage.list_files(storage.join(s3, "run", "report", "images"))}
    assert parser.imgs and {src.split("/", 1)[1] for src in parser.imgs} <= written
    assert "tokenizer_curves.png" in written  # the TensorBoard events were read from S3
