"""The static results page of a pipeline run: ``index.html`` plus an ``images/`` folder.

:func:`build_report` reads a run folder written by `emojiray pipeline --out RUN` (local or
``s3://``; the layout is in :mod:`emojiray.pipeline`), optionally a tune sweep and a folder of
benchmark JSONs, and writes one self-contained page: no JavaScript, no CDN, relative links only,
so the folder can be opened from disk, copied anywhere or served by GitHub Pages.

Sections: the run (device, dates, git revision), a summary against the reference and the
targets (:mod:`emojiray.report.baselines`), the data (statistics, contact sheets), the
tokenizer (training curves, reconstructions, codebook usage), each prior (training curves,
sample sheets, sample metrics), the rate–distortion study, the extensions, benchmarks and the
pipeline's stages. Any part the run lacks is listed as "not in this run"; a file that cannot be
read is skipped with its reason. Nothing here imports Ray or torch.

:class:`ReportBuilder` gathers the data (reads the files, draws the plots, copies the images) into
sections of blocks (:mod:`emojiray.report.markup`); the Jinja2 template ``templates/report.html.j2``
turns them into HTML and escapes every value.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

from emojiray import __version__, storage
from emojiray.errors import EmojirayError
from emojiray.registry import EXTENSIONS, PRIORS
from emojiray.report import baselines as B
from emojiray.report import plots
from emojiray.report.events import read_scalars
from emojiray.report.markup import (Block, Cell, Details, Figure, Heading, Missing, Note, Page, Row, Section,
                                     Table, flatten, fmt, is_num, kv_table, render, table, verdict)

# Files whose presence makes a folder a (possibly unfinished) pipeline run.
RUN_MARKERS = ("pipeline.json", "data_summary.json", "eval_vqvae.json", "tokenizer/train_vqvae.json")

TOKENIZER_PANELS = [
    plots.Panel("loss", [plots.Line("train loss", ["train/loss", "train_loss"]),
                         plots.Line("reconstruction MSE", ["train/recon_mse"]),
                         plots.Line("VQ loss", ["train/vq_loss"]),
                         plots.Line("validation MSE", ["val/val_mse", "val_mse"])], logy=True),
    plots.Panel("validation PSNR (dB)", [plots.Line("validation", ["val/val_psnr", "val_psnr"])]),
    plots.Panel("validation SSIM", [plots.Line("validation", ["val/val_ssim", "val_ssim"])]),
    plots.Panel("perplexity", [plots.Line("top (train)", ["train/perplexity_top"]),
                               plots.Line("bottom (train)", ["train/perplexity_bottom"]),
                               plots.Line("top (val)", ["val/perplexity_top", "perplexity_top"]),
                               plots.Line("bottom (val)", ["val/perplexity_bottom", "perplexity_bottom"]),
                               plots.Line("codes (val)", ["val/perplexity", "perplexity"])]),
    plots.Panel("codes used (validation)", [plots.Line("top", ["val/codes_used_top", "codes_used_top"]),
                                            plots.Line("bottom", ["val/codes_used_bottom", "codes_used_bottom"]),
                                            plots.Line("codes", ["val/codes_used", "codes_used"])]),
    plots.Panel("training images/s", [plots.Line("images/s", ["train/images_per_s", "images_per_s"])]),
    plots.Panel("learning rate", [plots.Line("lr", ["train/lr"])]),
    plots.Panel("dead-code restarts", [plots.Line("top", ["train/restarts_top"]),
                                       plots.Line("bottom", ["train/restarts_bottom"])]),
]
PRIOR_PANELS = [
    plots.Panel("bits per code", [plots.Line("train", ["train/bits_per_code", "train_bits_per_code"]),
                                  plots.Line("validation", ["val/val_bits_per_code", "val_bits_per_code"])]),
    plots.Panel("validation accuracy", [plots.Line("validation", ["val/val_accuracy", "val_accuracy"])]),
    plots.Panel("training images/s", [plots.Line("images/s", ["val/images_per_s", "images_per_s"])]),
    plots.Panel("learning rate", [plots.Line("lr", ["train/lr"])]),
]



def git_revision() -> dict[str, Any] | None:
    """The git revision of the checkout this emojiray is imported from (None outside a checkout)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=10, check=False)

    try:
        top = git("rev-parse", "--show-toplevel")
        if top.returncode != 0 or os.path.realpath(top.stdout.strip()) != os.path.realpath(root):
            return None  # not a checkout of emojiray (e.g. installed into a venv that lives in some repository)
        rev = git("rev-parse", "HEAD")
        if rev.returncode != 0:
            return None
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"revision": rev.stdout.strip(), "dirty": bool(status.stdout.strip()), "root": root}


class ReportBuilder:
    """Reads one run (and optionally a sweep and benchmarks), copies or draws its images into
    ``out/images/`` and writes ``out/index.html``: each ``section_*`` method returns the blocks of
    one section (:mod:`emojiray.report.markup`), the template lays them out."""

    def __init__(self, run: str, out: str, tune: str | None = None, bench: str | None = None, log=print):
        self.run, self.out, self.log = run.rstrip("/") or run, out, log
        self.tune_arg, self.bench_arg = tune, bench
        self.images = storage.join(out, "images")
        self.missing: list[tuple[str, str]] = []  # (section, what)
        self.problems: list[str] = []
        self.written: dict[str, str] = {}  # image name -> relative src
        self.pipeline: dict[str, Any] = {}
        self.config: dict[str, Any] = {}
        self.cache: dict[str, Any] = {}

    # ---- reading ---------------------------------------------------------------------------
    def uri(self, *parts: str) -> str:
        return storage.join(self.run, *parts)

    def json(self, uri: str) -> Any:
        """A JSON file, or None when it is missing or unreadable (a half-written file is retried)."""
        if uri in self.cache:
            return self.cache[uri]
        err: Exception | None = None
        value = None
        for attempt in range(3):
            try:
                if not storage.exists(uri):
                    break
                value = storage.read_json(uri)
                err = None
                break
            except EmojirayError as exc:  # mid-write, or not JSON
                err = exc
                if attempt < 2:
                    time.sleep(0.4 * (attempt + 1))
        if err is not None:
            self.problem(f"skipped {uri}: {err}")
        self.cache[uri] = value
        return value

    def problem(self, text: str) -> None:
        self.problems.append(text)
        self.log(f"report: {text}")

    def miss(self, section: str, what: str) -> Missing:
        """Record a part the run lacks and return its "not in this run" block."""
        self.missing.append((section, what))
        return Missing(what)

    # ---- writing ---------------------------------------------------------------------------
    def _name(self, name: str) -> str:
        base, ext = os.path.splitext(name)
        candidate, i = name, 1
        while candidate in self.written:
            i += 1
            candidate = f"{base}_{i}{ext}"
        return candidate

    def _figure(self, src: str, data: bytes, alt: str, caption: str, sheet: bool,
                fit: tuple[int, int] = (560, 620)) -> Figure:
        """The figure of an image written to ``src``, sized from its pixels when they can be read."""
        width = height = None
        try:
            from PIL import Image

            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
        except Exception:
            pass
        if not (width and height):
            return Figure(src, alt, caption)
        if sheet:  # small emoji sheets: enlarged (at most 2x, within ``fit``) with sharp pixels
            scale = max(1.0, min(2.0, fit[0] / width, fit[1] / height))
            width, height = round(width * scale), round(height * scale)
        return Figure(src, alt, caption, width, height, pixelated=sheet)

    def image(self, uri: str, caption: str = "", name: str | None = None, sheet: bool = True,
              fit: tuple[int, int] = (560, 620)) -> Figure | None:
        """Copy an image of the run into images/ and return its figure (None when missing/unreadable)."""
        data = None
        for attempt in range(3):
            try:
                if not storage.exists(uri):
                    return None
                data = storage.read_bytes(uri)
                if _image_ok(data):
                    break
            except EmojirayError as exc:
                self.problem(f"skipped {uri}: {exc}")
                return None
            data = None
            if attempt < 2:
                time.sleep(0.4 * (attempt + 1))
        if data is None:
            self.problem(f"skipped {uri}: not a readable image (still being written?)")
            return None
        fname = self._name(name or _flat_name(self.run, uri))
        storage.write_bytes(storage.join(self.images, fname), data)
        self.written[fname] = f"images/{fname}"
        return self._figure(f"images/{fname}", data, alt=storage.basename(uri), caption=caption, sheet=sheet,
                            fit=fit)

    def figure(self, name: str, png: bytes | None, caption: str = "") -> Figure | None:
        """Write a generated plot into images/ and return its figure."""
        if not png:
            return None
        fname = self._name(name)
        storage.write_bytes(storage.join(self.images, fname), png)
        self.written[fname] = f"images/{fname}"
        return self._figure(f"images/{fname}", png, alt=name, caption=caption, sheet=False)

    # ---- sections --------------------------------------------------------------------------
    def _devices(self, ev: dict[str, Any], tr: dict[str, Any]) -> list[str]:
        p, devices = self.pipeline, []
        if p.get("device"):
            devices.append(f"{p['device']} (pipeline.json)")
        if ev.get("device"):
            devices.append(f"{ev['device']} (tokenizer evaluation)")
        if tr:
            devices.append(f"{tr.get('workers', '?')} training worker(s), "
                           f"{'GPU' if tr.get('use_gpu') else 'CPU'} (tokenizer training)")
        for kind in self.prior_kinds():
            es = self.json(self.uri(f"samples_{kind}", "eval_samples.json")) or {}
            if es.get("sample_device"):
                devices.append(f"{es['sample_device']} (sampling, {kind})")
                break
        return devices

    def section_run(self) -> list[Block]:
        p, cfg = self.pipeline, self.config
        ev = self.json(self.uri("eval_vqvae.json")) or {}
        tr = self.json(self.uri("tokenizer", "train_vqvae.json")) or {}
        devices = self._devices(ev, tr)
        git = git_revision()
        run_rev = p.get("git_revision") or p.get("git") or p.get("revision")
        if isinstance(run_rev, dict):
            run_rev = run_rev.get("revision") or json.dumps(run_rev)
        if git:
            at_report = f"{git['revision']}{' with uncommitted changes' if git['dirty'] else ''}"
        rows = [
            ("run", self.run),
            ("started / finished", f"{p.get('started', '—')} / {p.get('finished', '—')}" if p else
             ev.get("date", "—")),
            ("device", "; ".join(devices) if devices else "—"),
            ("image size", f"{cfg.get('data', {}).get('size', '—')} px"),
            ("data source", cfg.get("data", {}).get("source", "—")),
            ("git revision of the run", run_rev or "not recorded in pipeline.json"),
            ("git revision at report time",
             f"{at_report} (the emojiray checkout that built this page, {git['root']})" if git
             else "not inside a git checkout"),
            ("emojiray version", f"{p.get('emojiray_version', '—')} (run); {__version__} (report)"),
            ("report built", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")),
        ]
        if self.tune:
            rows.append(("tune sweep", self.tune))
        if self.bench:
            rows.append(("benchmarks", self.bench))
        return _present(kv_table(rows, ("", "")))

    def comparable(self) -> tuple[bool, str]:
        ev = self.json(self.uri("eval_vqvae.json")) or {}
        device = str(self.pipeline.get("device") or ev.get("device") or "")
        size = self.config.get("data", {}).get("size")
        ok = B.REFERENCE_DEVICE.split()[-1] in device and size == B.REFERENCE_IMAGE_SIZE
        text = (f"This run: device {device or 'unknown'}, {size or '?'} px. The reference numbers come from one "
                f"{B.REFERENCE_DEVICE} at {B.REFERENCE_IMAGE_SIZE} px"
                + (": comparable." if ok else ": not comparable (other device or image size); they are shown for "
                   "orientation only."))
        return ok, text

    def section_summary(self) -> list[Block]:
        _, text = self.comparable()
        return [Note(text), *self._tokenizer_summary(), *self._generation_summary()]

    def _tokenizer_summary(self) -> list[Block]:
        """The tokenizer's numbers next to the reference's and the targets."""
        ev = self.json(self.uri("eval_vqvae.json"))
        tr = self.json(self.uri("tokenizer", "train_vqvae.json"))
        R, T = B.REFERENCE_VQVAE, B.TARGETS
        rows = []
        if tr:
            ips = (tr.get("metrics") or {}).get("images_per_s")
            rows.append(("training throughput (images/s)", ips,
                         f"{R['images_per_s_file_loader']:,} end to end; {R['images_per_s_data_on_gpu']:,} data on GPU",
                         f"≥ {T['images_per_s']:,}", verdict(None if ips is None else ips >= T["images_per_s"])))
        if ev:
            rows.append(("held-out PSNR (dB)", ev.get("psnr"), f"{R['psnr']}", f"≥ {T['psnr']:g}",
                         verdict(None if ev.get("psnr") is None else ev["psnr"] >= T["psnr"])))
            rows.append(("held-out SSIM", ev.get("ssim"), f"{R['ssim']}", f"≥ {T['ssim']:g}",
                         verdict(None if ev.get("ssim") is None else ev["ssim"] >= T["ssim"])))
            rfid = ev.get("rfid")
            rows.append((f"rFID ({fmt(ev.get('rfid_images'))} images)", rfid,
                         f"{R['rfid']} (real-vs-real floor {R['real_vs_real_fid']})", f"≤ {T['rfid']:g}",
                         verdict(None if rfid is None else rfid <= T["rfid"])))
            for level, lv in (ev.get("levels") or {}).items():
                used, k = lv.get("codes_used"), lv.get("codebook_size")
                ref_used, ref_k = R["codes_used"].get(level), R["codebook_size"].get(level)
                share = used / k if used is not None and k else None
                rows.append((f"codes used, {level}",
                             f"{fmt(used)} / {fmt(k)} ({share:.1%})" if share is not None else fmt(used),
                             f"{ref_used} / {ref_k} ({ref_used / ref_k:.1%})" if ref_used is not None else "—",
                             f"≥ {T['codes_used_share']:.0%}",
                             verdict(None if share is None else share >= T["codes_used_share"])))
        if not rows:
            return [self.miss("summary", "tokenizer metrics (eval_vqvae.json, tokenizer/train_vqvae.json)")]
        return [Heading("Tokenizer"),
                *_present(table(("metric", "this run", f"reference ({R['source']})", "target", "meets target"), rows))]

    def _generation_summary(self) -> list[Block]:
        """Each prior's sample metrics next to the reference's and the targets."""
        G, S, T = B.REFERENCE_GENERATION, B.REFERENCE_SAMPLER, B.TARGETS
        rows = []
        for kind in self.prior_kinds():
            es = self.json(self.uri(f"samples_{kind}", "eval_samples.json"))
            if not es:
                continue
            sps, fid = es.get("samples_per_s"), es.get("fid")
            target_sps = T["samples_per_s"].get(kind)
            ok_sps = None if target_sps is None or sps is None else sps >= target_sps
            ok_fid = None if fid is None else fid <= T["fid"]
            ok = None if ok_fid is None and ok_sps is None else bool((ok_fid is not False) and (ok_sps is not False))
            real = es.get("real_images") or {}
            rows.append((kind, es.get("count"), sps, f"≥ {target_sps:,}" if target_sps else "—",
                         fid, real.get("heldout"), es.get("fid_train"), real.get("train"), es.get("kid"),
                         es.get("precision"), es.get("recall"), es.get("memorized_share"), verdict(ok)))
        if not rows:
            return [self.miss("summary", "sample metrics (samples_<kind>/eval_samples.json)")]
        rows.append((Cell(f"reference {G['prior']}", style="em"), G["samples"],
                     f"{S['samples_per_s'][64]} (batch 64); {S['samples_per_s'][8]} (batch 8)", "—",
                     G["fid"], G["fid_heldout_images"], G["fid_train"], G["fid_train_images"],
                     None, None, None, None, verdict(None)))
        headers = ("prior", "samples", "samples/s", "target samples/s", "FID vs held-out", "held-out images",
                   "FID vs train", "train images", "KID", "precision", "recall", "memorized",
                   f"meets targets (FID ≤ {T['fid']:g})")
        return [Heading("Generation"), *_present(table(headers, rows)),
                Note("FID is biased upwards for small sample and reference sets: compare numbers measured with "
                     f"the same set sizes. Reference: {G['source']}; {S['source']}.")]

    def section_data(self) -> list[Block]:
        s = self.json(self.uri("data_summary.json"))
        blocks: list[Block] = []
        if s:
            c = s.get("counts") or {}
            rows = [("image", s.get("image")), ("input files", c.get("inputs")), ("images kept", c.get("total")),
                    ("exact duplicates removed", c.get("duplicates_removed")), ("skipped inputs", c.get("skipped")),
                    ("distinct emoji", c.get("emoji_ids")), ("shards", s.get("shards")), ("bytes", s.get("bytes"))]
            rows += [(f"split: {k}", v) for k, v in (c.get("split") or {}).items()]
            rows += [(f"converted: {k}", v) for k, v in (s.get("converted") or {}).items()]
            tables = [kv_table([r for r in rows if r[1] is not None], ("", "count"))]
            for key, title in (("vendor", "vendor"), ("category", "category"), ("emotion", "emotion (face emoji)")):
                if c.get(key):
                    tables.append(table((title, "images"), sorted(c[key].items(), key=lambda kv: -kv[1])))
            blocks.append(Row(_present(*tables)))
            src = s.get("sources") or []
            if src:
                blocks += _present(table(("source", "package", "version", "license", "sha1"),
                                         [(x.get("vendor") or x.get("kind"), x.get("package") or x.get("uri"),
                                           x.get("version"), x.get("license"), x.get("sha1")) for x in src]))
        else:
            blocks.append(self.miss("data", "data statistics (data_summary.json)"))
        figs = []
        names = sorted(storage.basename(u) for u in storage.list_files(self.run, recursive=False)
                       if storage.basename(u).startswith("data_contact_") and u.endswith(".png"))
        for name in names:
            what = name[len("data_contact_"):-len(".png")]
            figs += _present(self.image(self.uri(name), f"contact sheet by {what}", fit=(1100, 900)))
        blocks += figs or [self.miss("data", "contact sheets (data_contact_*.png)")]
        return blocks

    def _history_series(self, history: Sequence[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
        out: dict[str, list[tuple[float, float]]] = {}
        for i, h in enumerate(history or []):
            x = h.get("step", h.get("epoch", i + 1))
            for k, v in h.items():
                if is_num(v) and k not in ("step", "epoch"):
                    out.setdefault(k, []).append((float(x), float(v)))
        return out

    def _ray_history(self, folder: str) -> list[dict[str, Any]]:
        """Per-report metrics from Ray Train's result.json files (JSON lines), if any."""
        rows = []
        for uri in storage.list_files(folder):
            if storage.basename(uri) != "result.json":
                continue
            try:
                text = storage.read_text(uri)
            except EmojirayError:
                continue
            for line in text.splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and "epoch" in rec:
                    rows.append(rec)
        return sorted(rows, key=lambda r: (r.get("step", 0), r.get("epoch", 0)))

    def _curves(self, folder: str, summary: dict[str, Any] | None, panels, name: str, title: str) -> Block:
        """Training curves from TensorBoard events, else the per-epoch history of the run's JSON or of
        Ray Train's result files; a note says which."""
        series = read_scalars(storage.join(folder, "tensorboard"))
        history = (summary or {}).get("history") or []
        what = "the per-epoch history in the run's summary JSON"
        if not history:
            history, what = self._ray_history(storage.join(folder, "ray")), "Ray Train's result files (ray/)"
        # epoch-level values fill in what the events lack (no events, or a metric never logged)
        for k, v in self._history_series(history).items():
            series.setdefault(k, v)
        used: set[str] = set()
        png = plots.curves(panels, series, xlabel="step", used=used)
        sources = (["TensorBoard events (tensorboard/)"] if any("/" in k for k in used) else []) + \
                  ([what] if any("/" not in k for k in used) else [])
        fig = self.figure(name, png, f"{title}; from {' and '.join(sources)}")
        return fig or self.miss(title, f"{title} (tensorboard/ events or a history in the summary JSON)")

    def section_tokenizer(self) -> list[Block]:
        tr = self.json(self.uri("tokenizer", "train_vqvae.json"))
        blocks: list[Block] = [Heading("Training")]
        if tr:
            m = tr.get("metrics") or {}
            rows = [("workers", tr.get("workers")), ("GPU", tr.get("use_gpu")), ("wall seconds", tr.get("wall_seconds")),
                    ("epochs", tr.get("epoch")), ("steps", tr.get("step"))]
            rows += [(f"final {k}", v) for k, v in m.items() if k not in ("epoch", "step")]
            model = (self.config.get("model") or {})
            if model:
                rows += [("model", (f"{model.get('arch')}, {model.get('channels')} channels, codebook "
                                    f"{fmt(model.get('codebook_size'))}, code dim {fmt(model.get('code_dim'))}, "
                                    f"β {model.get('beta')}"))]
            blocks += _present(kv_table([r for r in rows if r[1] is not None]))
        else:
            blocks.append(self.miss("tokenizer", "tokenizer training summary (tokenizer/train_vqvae.json)"))
        blocks.append(self._curves(self.uri("tokenizer"), tr, TOKENIZER_PANELS, "tokenizer_curves.png",
                                   "tokenizer training curves"))
        blocks.append(Heading("Reconstructions"))
        ev = self.json(self.uri("eval_vqvae.json"))
        if ev:
            rows = [("split", ev.get("split")), ("images", ev.get("images")), ("MSE", ev.get("mse")),
                    ("PSNR (dB)", ev.get("psnr")), ("SSIM", ev.get("ssim")), ("rFID", ev.get("rfid")),
                    ("rFID images", ev.get("rfid_images")), ("bits per image (fixed rate)", ev.get("bits_per_image")),
                    ("bits per image (entropy-coded)", ev.get("entropy_coded_bits_per_image")),
                    ("device", ev.get("device")), ("date", ev.get("date"))]
            blocks += _present(kv_table([r for r in rows if r[1] is not None]))
        else:
            blocks.append(self.miss("tokenizer", "tokenizer evaluation (eval_vqvae.json)"))
        f = self.image(self.uri("recon_grid.png"), "held-out originals (top) above their reconstructions (bottom)",
                       fit=(1100, 700))
        blocks.append(f or self.miss("tokenizer", "reconstruction grid (recon_grid.png)"))
        return blocks + self._codebook_usage((ev or {}).get("levels") or {})

    def _codebook_usage(self, levels: dict[str, dict[str, Any]]) -> list[Block]:
        """A table and a plot of each codebook level's usage."""
        blocks: list[Block] = [Heading("Codebook usage")]
        if not levels:
            return blocks + [self.miss("tokenizer", "codebook usage (levels in eval_vqvae.json)")]
        rows = []
        for name, lv in levels.items():
            k, used = lv.get("codebook_size"), lv.get("codes_used")
            rows.append((name, k, fmt(lv.get("grid")).replace(", ", "×"), used,
                         f"{used / k:.1%}" if used is not None and k else "—", lv.get("perplexity"),
                         lv.get("entropy_bits"), lv.get("kl_uniform_nats"),
                         (f"{B.REFERENCE_VQVAE['codes_used'].get(name, '—')} / "
                          f"{B.REFERENCE_VQVAE['codebook_size'].get(name, '—')}")))
        blocks += _present(table(("level", "K", "grid", "codes used", "share", "perplexity", "entropy (bits)",
                                  "KL from uniform (nats)", "reference used"), rows))
        blocks += _present(self.figure("codebook_usage.png", plots.codebook_usage(levels, B.REFERENCE_VQVAE),
                                       f"codes used and perplexity as a share of each codebook; dashed: target "
                                       f"{B.TARGETS['codes_used_share']:.0%}; dotted: the reference's usage"))
        return blocks

    def prior_kinds(self) -> list[str]:
        if "prior_kinds" in self.cache:
            return self.cache["prior_kinds"]
        kinds = list((self.config.get("pipeline") or {}).get("priors") or [])
        for uri in storage.list_files(self.run, recursive=False):
            name = storage.basename(uri)
            if name.startswith("samples_") and name.endswith(".png"):
                kind = name[len("samples_"):-len(".png")]
                if kind not in kinds:
                    kinds.append(kind)
        for kind in PRIORS:
            if kind not in kinds and (storage.exists(self.uri(f"prior_{kind}")) or storage.exists(self.uri(f"samples_{kind}"))):
                kinds.append(kind)
        self.cache["prior_kinds"] = kinds
        return kinds

    def section_priors(self) -> list[Block]:
        kinds = self.prior_kinds()
        if not kinds:
            return [self.miss("priors", "priors (prior_<kind>/, samples_<kind>/)")]
        return [b for kind in kinds for b in self._prior(kind)]

    def _prior(self, kind: str) -> list[Block]:
        """One prior: its training summary and sample metrics, training curves and sample sheets."""
        blocks: list[Block] = [Heading(kind, anchor=f"prior-{kind}")]
        tp = self.json(self.uri(f"prior_{kind}", "train_prior.json"))
        es = self.json(self.uri(f"samples_{kind}", "eval_samples.json"))
        tables = []
        if tp:
            rows = [("condition", tp.get("condition")), ("best epoch", tp.get("best_epoch"))]
            rows += [(f"final {k}", v) for k, v in (tp.get("metrics") or {}).items()]
            tables.append(kv_table([r for r in rows if r[1] is not None], ("training", "")))
        else:
            blocks.append(self.miss(f"prior {kind}", f"{kind} training summary (prior_{kind}/train_prior.json)"))
        if es:
            tables += self._sample_tables(es)
        else:
            blocks.append(self.miss(f"prior {kind}", f"{kind} sample metrics (samples_{kind}/eval_samples.json)"))
        if tables:
            blocks.append(Row(_present(*tables)))
        blocks.append(self._curves(self.uri(f"prior_{kind}"), tp, PRIOR_PANELS, f"prior_{kind}_curves.png",
                                   f"{kind} training curves"))
        figs = _present(self.image(self.uri(f"samples_{kind}.png"), f"{kind}: the pipeline's sample sheet"))
        for sheet, caption in (("samples_grid.png", "samples"),
                               ("samples_nearest.png", "samples next to their nearest training images"),
                               ("samples_conditions.png", "samples per condition value")):
            figs += _present(self.image(self.uri(f"samples_{kind}", sheet), f"{kind}: {caption}"))
        blocks.append(Row(figs) if figs else self.miss(f"prior {kind}", f"{kind} sample sheets"))
        return blocks

    def _sample_tables(self, es: dict[str, Any]) -> list[Table | None]:
        """The sample metrics of one prior, and its FIDs per condition value when it has them."""
        div = es.get("diversity") or {}
        rows = [("samples", es.get("count")), ("image size", es.get("image_size")),
                ("condition", fmt({k: v for k, v in (es.get("condition") or {}).items() if v is not None})),
                ("sampling parameters", es.get("params")), ("samples/s", es.get("samples_per_s")),
                ("sampling device", es.get("sample_device")), ("real images", es.get("real_images")),
                ("FID vs held-out", es.get("fid")), ("FID vs train", es.get("fid_train")),
                ("real-vs-real FID (floor)", es.get("real_vs_real_fid")),
                ("KID", es.get("kid")), ("precision", es.get("precision")), ("recall", es.get("recall")),
                ("memorized share", es.get("memorized_share")),
                ("distinct code sequences (share)", div.get("distinct_share")),
                ("mean pairwise feature distance (held-out)",
                 f"{fmt(div.get('mean_pairwise_feature_distance'))} "
                 f"({fmt(div.get('heldout_mean_pairwise_feature_distance'))})" if div else None),
                ("features", es.get("features")), ("date", es.get("date"))]
        tables = [kv_table([r for r in rows if r[1] is not None], ("samples", ""))]
        pc = (es.get("per_condition") or {}).get("values") or {}
        if pc:
            tables.append(table((f"{es['per_condition'].get('name', 'condition')}", "samples", "real train",
                                 "FID vs train", "real held-out", "FID vs held-out"),
                                [(k, v.get("samples"), v.get("real_train"), v.get("fid_train"),
                                  v.get("real_heldout"), v.get("fid_heldout")) for k, v in pc.items()]))
        return tables

    def section_rate_distortion(self) -> list[Block]:
        ev = self.json(self.uri("eval_vqvae.json")) or {}
        run_point = {"bits": ev.get("bits_per_image"), "entropy_bits": ev.get("entropy_coded_bits_per_image"),
                     "psnr": ev.get("psnr")}
        trials: list[dict[str, Any]] = []
        summary = None
        if self.tune:
            summary = self.json(storage.join(self.tune, "sweep_summary.json"))
            csv_uri = storage.join(self.tune, "trials.csv")
            if storage.exists(csv_uri):
                try:
                    trials = list(csv.DictReader(io.StringIO(storage.read_text(csv_uri))))
                except (EmojirayError, csv.Error) as exc:
                    self.problem(f"skipped {csv_uri}: {exc}")
        f = self.figure("rate_distortion.png", plots.rate_distortion(trials, run_point),
                        "PSNR against the entropy-coded rate: the sweep's trials (validation PSNR) and this "
                        "run's tokenizer (held-out PSNR)")
        blocks: list[Block] = [f or self.miss("rate–distortion", "rate–distortion points")]
        if not self.tune:
            return blocks + [self.miss("rate–distortion", "a tune sweep (--tune URI or RUN/tune)")]
        if summary:
            blocks += self._sweep_summary(summary)
        else:
            blocks.append(self.miss("rate–distortion", "sweep summary (sweep_summary.json)"))
        if trials:
            blocks += _trials(trials)
        for name, caption in (("pareto.png", "the sweep's Pareto front"),
                              ("importance.png", "hyperparameter importance for PSNR (Optuna)"),
                              ("parallel_coordinates.png", "parallel coordinates (Optuna)")):
            f = self.image(storage.join(self.tune, name), caption, name=f"tune_{name}", sheet=False)
            if f:
                blocks.append(f)
            else:
                self.missing.append(("rate–distortion", f"tune plot {name}"))
        return blocks

    def _sweep_summary(self, summary: dict[str, Any]) -> list[Block]:
        """The sweep's best configuration per rate budget, its trial counts and skipped plots."""
        blocks: list[Block] = []
        rows = []
        for b in summary.get("best_per_budget") or []:
            m = b.get("metrics") or {}
            rows.append((b.get("budget_bits"), b.get("trial_id"), fmt(b.get("params")), m.get("bits_per_image"),
                         m.get("entropy_bits_per_image"), m.get("val_psnr"), m.get("val_ssim"),
                         m.get("heldout_psnr"), m.get("rfid"), storage.basename(b.get("preset") or "") or None))
        if rows:
            blocks.append(Heading("Best configuration per rate budget"))
            blocks += _present(table(("budget (bits)", "trial", "parameters", "bits/image", "entropy bits/image",
                                      "val PSNR", "val SSIM", "held-out PSNR", "rFID", "preset"), rows))
        counts = summary.get("counts") or {}
        if counts:
            blocks += _present(kv_table(counts.items(), ("trial status", "trials")))
        for name, reason in (summary.get("skipped_plots") or {}).items():
            blocks.append(Note(f"{name} plot skipped by the sweep: {reason}"))
        return blocks

    def section_extensions(self) -> list[Block]:
        ext = self.uri("extensions")
        files = [storage.basename(u) for u in storage.list_files(ext, recursive=False)]
        if not files:
            return [self.miss("extensions", "extensions (RUN/extensions/)")]
        names = [n for n in EXTENSIONS]
        names += sorted({f[:-5] for f in files if f.endswith(".json") and f[:-5] not in names and
                         f != "fingerprint.json"})
        return [b for name in names for b in self._extension(ext, name, files)]

    def _extension(self, ext: str, name: str, files: list[str]) -> list[Block]:
        """One extension: its note, settings and measures (``name.json``) and its images."""
        record = self.json(storage.join(ext, f"{name}.json")) if f"{name}.json" in files else None
        images = sorted(f for f in files if f.startswith(name) and f.lower().endswith((".png", ".gif")))
        if record is None and not images:
            return [Heading(name), self.miss("extensions", f"extension {name}")]
        blocks: list[Block] = [Heading(name, anchor=f"ext-{name}")]
        if isinstance(record, dict):
            blocks += _extension_record(name, record)
        elif f"{name}.json" in files:
            blocks.append(self.miss("extensions", f"{name} metrics ({name}.json unreadable)"))
        else:
            blocks.append(self.miss("extensions", f"{name} metrics ({name}.json)"))
        for img in images:
            blocks += _present(self.image(storage.join(ext, img), img, name=f"ext_{img}"))
        return blocks

    def section_bench(self) -> list[Block]:
        if not self.bench:
            return [self.miss("benchmarks", "benchmarks (--bench URI or RUN/bench)")]
        files = [u for u in storage.list_files(self.bench, recursive=False) if u.endswith(".json")]
        if not files:
            return [self.miss("benchmarks", f"benchmark JSONs in {self.bench}")]
        blocks: list[Block] = []
        for uri in files:
            rec = self.json(uri)
            if not isinstance(rec, dict):
                continue
            blocks.append(Heading(str(rec.get("benchmark") or storage.basename(uri))))
            if rec.get("command"):
                blocks.append(Note(str(rec["command"]), kind="code"))
            rows = [(k, v) for k, v in rec.items() if k not in ("command", "benchmark")
                    and not isinstance(v, (dict, list))]
            for key in ("ratios", "targets"):  # the reference itself is in the summary
                if isinstance(rec.get(key), dict):
                    rows += flatten(rec[key], key, depth=2)
            tables = [kv_table(rows[:40])]
            runs = rec.get("results") or rec.get("priors") or rec.get("runs")
            if isinstance(runs, list) and runs and isinstance(runs[0], dict):
                cols = [k for k in runs[0] if not isinstance(runs[0][k], (dict, list)) and k not in
                        ("command", "device", "date")][:10]
                tables.append(table(cols, [[r.get(c) for c in cols] for r in runs[:30]]))
            blocks.append(Row(_present(*tables)))
        return blocks or [self.miss("benchmarks", "readable benchmark JSONs")]

    def section_stages(self) -> list[Block]:
        stages = self.pipeline.get("stages") or {}
        if not stages:
            return [self.miss("stages", "pipeline stages (pipeline.json)")]
        rows = []
        for name, st in stages.items():
            state = "skipped (up to date)" if st.get("skipped") else ("retrained" if st.get("retrained") else "ran")
            keep = {k: v for k, v in st.items() if k not in ("seconds", "skipped", "retrained", "uri", "model",
                                                              "prior", "metrics", "images_per_s")
                    and not isinstance(v, (dict, list))}
            sec = st.get("seconds")
            rows.append((name, Cell(f"{sec:,.1f}") if is_num(sec) else "—", state, fmt(keep) if keep else "—"))
        blocks = _present(table(("stage", "seconds", "state", "outputs"), rows))
        if self.config:
            blocks.append(Details("configuration of the run", pre=json.dumps(self.config, indent=1)))
        return blocks

    # ---- assembly --------------------------------------------------------------------------
    def _open(self) -> None:
        """Check the run folder, read pipeline.json and settle the sweep and benchmark folders."""
        if not storage.exists(self.run):
            raise EmojirayError(f"run folder {self.run} not found: pass the --out folder of `emojiray pipeline`")
        if not any(storage.exists(self.uri(*m.split("/"))) for m in RUN_MARKERS):
            raise EmojirayError(f"{self.run} holds no pipeline output (no pipeline.json): pass the --out folder "
                                f"of `emojiray pipeline`")
        if storage.exists(self.uri("pipeline.json")):
            self.pipeline = self.json(self.uri("pipeline.json")) or {}
        else:
            self.missing.append(("run", "pipeline.json (the pipeline has not finished?)"))
        self.config = self.pipeline.get("config") or {}
        self.tune = self.tune_arg or (self.uri("tune") if storage.exists(self.uri("tune", "sweep_summary.json")) else None)
        if self.tune_arg and not storage.exists(self.tune_arg):
            raise EmojirayError(f"tune folder {self.tune_arg} not found: pass the --out folder of `emojiray tune`")
        self.bench = self.bench_arg or (self.uri("bench") if storage.exists(self.uri("bench")) else None)
        if self.bench_arg and not storage.exists(self.bench_arg):
            raise EmojirayError(f"benchmark folder {self.bench_arg} not found")

    def sections(self) -> list[Section]:
        """Every section of the page, in order; one that fails carries its error instead of blocks."""
        parts: list[tuple[str, str, Callable[[], list[Block]]]] = [
            ("run", "Run", self.section_run), ("summary", "Summary against the baselines", self.section_summary),
            ("data", "Data", self.section_data), ("tokenizer", "Tokenizer", self.section_tokenizer),
            ("priors", "Priors and samples", self.section_priors),
            ("rate-distortion", "Rate–distortion", self.section_rate_distortion),
            ("extensions", "Extensions", self.section_extensions),
            ("bench", "Benchmarks", self.section_bench), ("stages", "Pipeline stages", self.section_stages)]
        out = []
        for anchor, title, fn in parts:
            section = Section(anchor, title)
            try:
                section.blocks = fn()
            except Exception as exc:  # one broken section never takes the page down
                self.problem(f"section {title} failed: {type(exc).__name__}: {exc}")
                section.error = f"{type(exc).__name__}: {exc}"
            out.append(section)
            self.log(f"report: {title}")
        return out

    def build(self) -> str:
        """Write index.html (and images/) and return its URI."""
        self._open()
        sections = self.sections()
        page = Page(storage.basename(self.run), sections, self.missing, self.problems)
        index = storage.join(self.out, "index.html")
        storage.write_text(index, render(page))
        self.log(f"report: {len(self.written)} images, {len(self.missing)} parts not in this run -> {index}")
        return index


def _present(*blocks: Block | None) -> list[Block]:
    """The blocks that exist (a table without rows or an unreadable image is None)."""
    return [b for b in blocks if b is not None]


def _trials(trials: list[dict[str, str]]) -> list[Block]:
    """The first 60 trials of a sweep (trials.csv) as a table."""
    cols = [c for c in ("trial_id", "status", "model.codebook_size", "model.beta", "model.code_dim",
                        "epochs", "bits_per_image", "entropy_bits_per_image", "val_psnr", "val_ssim",
                        "heldout_psnr", "rfid", "on_front") if c in trials[0]]

    def cell(v: str) -> Any:
        try:
            return float(v) if v not in ("", None) else None
        except ValueError:
            return v

    blocks: list[Block] = [Heading("Trials"), *_present(table(cols, [[cell(t.get(c)) for c in cols]
                                                                     for t in trials[:60]]))]
    if len(trials) > 60:
        blocks.append(Note(f"{len(trials) - 60} more trials in trials.csv"))
    return blocks


def _extension_record(name: str, record: dict[str, Any]) -> list[Block]:
    """An extension's JSON record: its note, a table per method, its settings and headline measures
    side by side, and the rest of its values (at most 300) behind a "more values" summary."""
    blocks: list[Block] = [Note(str(record["note"]))] if record.get("note") else []
    settings = [(k, v) for k, v in record.items() if k not in ("note", "extension")
                and (not isinstance(v, (dict, list)) or
                     (isinstance(v, list) and len(v) <= 8 and all(not isinstance(x, (dict, list)) for x in v)))]
    methods = record.get("methods")
    if isinstance(methods, dict) and methods:
        cols: list[str] = []
        for m in methods.values():
            for k, v in (m or {}).items():
                if not isinstance(v, (dict, list)) and k not in cols:
                    cols.append(k)
        blocks += _present(table(["method", *cols], [[mname, *[(m or {}).get(c) for c in cols]]
                                                     for mname, m in methods.items()]))
    headline, rest = [], []
    for k, v in record.items():
        if k == "methods" and isinstance(v, dict):
            for mname, m in v.items():
                for sub, sv in (m or {}).items():
                    if isinstance(sv, dict):
                        rest.extend(flatten(sv, f"methods / {mname} / {sub}"))
        elif isinstance(v, dict) and k not in ("per_pair",):
            leaves = flatten(v, k)
            small = len(leaves) <= 12
            (headline if k == "summary" or k.startswith("vs_") or "_vs_" in k or small else rest).extend(leaves)
    tables = [kv_table(settings, ("setting", "value"))]
    if headline:
        tables.append(kv_table(headline, ("measure", "value")))
    blocks.append(Row(_present(*tables)))
    if rest:
        limit = 300
        more = [Note(f"{len(rest) - limit} more values in extensions/{name}.json")] if len(rest) > limit else []
        blocks.append(Details(f"more values from {name}.json ({len(rest)})",
                              [*_present(kv_table(rest[:limit], ("measure", "value"))), *more]))
    return blocks


def _image_ok(data: bytes) -> bool:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            im.load()
        return True
    except Exception:
        return False


def _flat_name(run: str, uri: str) -> str:
    """A file name for a run file inside images/: its path under the run with '/' as '__'."""
    base = str(run).rstrip("/") + "/"
    rel = uri[len(base):] if str(uri).startswith(base) else storage.basename(uri)
    return rel.replace("/", "__").replace(os.sep, "__")


def build_report(run_uri: str, out_uri: str | None = None, tune_uri: str | None = None, log: Callable = print,
                 bench_uri: str | None = None) -> str:
    """Write the report of the pipeline run at ``run_uri`` to ``out_uri`` (default ``RUN/report``):
    ``index.html`` and ``images/``. ``tune_uri``: an `emojiray tune` output (default ``RUN/tune`` when
    it exists); ``bench_uri``: a folder of benchmark JSONs (default ``RUN/bench`` when it exists).
    Returns the URI of index.html."""
    out_uri = out_uri or storage.join(run_uri, "report")
    return ReportBuilder(run_uri, out_uri, tune=tune_uri, bench=bench_uri, log=log).build()
