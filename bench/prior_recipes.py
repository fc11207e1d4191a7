"""Benchmark: which prior recipe draws the best emoji per CPU-minute, on one tokenizer's codes.

    python bench/prior_recipes.py --vqvae results/models/cpu/vqvae --seconds 600 \
        --recipe maskgit --recipe transformer --samples 1000

The tokenizer encodes the dataset once (train, val, test in memory). Each recipe (``--set``
overrides on ``--preset``, default ``cpu``) trains with the harness's own bare loop (no Ray) for
the same training time, keeping the weights of the best validation NLL as the Ray driver does
(a report every ``--report-every`` seconds), then draws ``--samples`` samples (conditioned on
the training mix of ``prior.condition``, if any) for each sampling setting (``--sampling``:
``temperature,top_k,top_p,choice_temperature,steps,guidance`` with blanks for the prior's own) and
measures them with the standard TF-Inception features: FID and KID against the held-out split
(val + test), FID against as many training images, the real-vs-real floor at the same set sizes,
precision and recall (k = 3, equal set sizes), and the share of near-copies of a training image
(pixel RMSE under the 1 % quantile of held-out-to-train distances). Rows are appended to
``--out`` (JSON lines) and the table rewritten; ``--sheets`` keeps a sample sheet per row. A
measurement, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

import recipe_rows  # noqa: E402

from emojiray.config import get_value, load_config, set_value  # noqa: E402
from emojiray.data import shards  # noqa: E402
from emojiray.generate.sample_run import condition_ids  # noqa: E402
from emojiray.images import from_model_output, grid, to_model_input, to_png_bytes  # noqa: E402
from emojiray.metrics.fid import FeatureStats, frechet_distance, kid, precision_recall  # noqa: E402
from emojiray.metrics.inception import InceptionFeatures  # noqa: E402
from emojiray.metrics.memorization import flat_pixels, memorization, nearest_neighbours  # noqa: E402
from emojiray.models import checkpoint as ckpt  # noqa: E402
from emojiray.models.prior import sample_codes  # noqa: E402
from emojiray.train import harness  # noqa: E402
from emojiray.train.prior_loop import PriorFamily  # noqa: E402

RECIPES: dict[str, list[str]] = {
    "maskgit": ["prior.kind=maskgit"],
    "transformer": ["prior.kind=transformer"],
    "pixelsnail": ["prior.kind=pixelsnail"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vqvae", required=True, help="an exported tokenizer (meta.json + model.safetensors)")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--recipe", action="append", default=[], help=f"one of {', '.join(RECIPES)} (repeatable)")
    ap.add_argument("--name", help="with --set: the name of a recipe given by its overrides")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--data", default="results/bench/data-32")
    ap.add_argument("--seconds", type=float, default=300, help="training time of each recipe")
    ap.add_argument("--report-every", type=float, default=30, help="validation (best-NLL choice) cadence")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--sampling", action="append", default=[],
                    help="temperature,top_k,top_p,choice_temperature,maskgit_steps,guidance (blank = the prior's own)")
    ap.add_argument("--flip", action="store_true",
                    help="add the codes of the horizontally flipped training images to the training set")
    ap.add_argument("--keep", help="export the last recipe's best prior to this directory")
    ap.add_argument("--reconstructions", action="store_true",
                    help="also measure the tokenizer's own reconstructions of the held-out images the same way: "
                         "the ceiling of any prior over its codes")
    ap.add_argument("--prior", help="with --name: measure this exported prior (a --keep of recipe NAME, whose "
                                    "training figures are taken from its row in --out) instead of training")
    ap.add_argument("--sheets", default="", help="directory for a sample sheet per row")
    ap.add_argument("--out", default="results/cpu/prior_recipes.jsonl")
    ap.add_argument("--table", default="results/cpu/prior_recipes.md")
    args = ap.parse_args()
    recipes = {} if args.reconstructions and not (args.recipe or args.name) else recipe_rows.chosen(ap, args, RECIPES)
    data = Data(args.vqvae, args.data, flip=args.flip)
    if args.reconstructions:
        row = reconstructions(args, data)
        recipe_rows.append(args.out, row)
        print(f"reconstructions of the held-out images: FID {row['fid']:.1f} (floor {row['fid_floor']:.1f}), "
              f"KID {row['kid']:.4f}, precision {row['precision']:.3f}, recall {row['recall']:.3f}", flush=True)
    for name, overrides in recipes.items():
        family, trained = kept(name, args) if args.prior else train(name, args, overrides, data)
        for setting in [s if s.strip(", ") else "" for s in args.sampling] or [""]:
            row = {**trained, **measure(family, setting, args, data, name)}
            recipe_rows.append(args.out, row)
            print(f"{name} [{row['sampling']}]: val {row['val_bits_per_code']:.3f} bits/code (best at "
                  f"{row['best_seconds']:.0f} s of {row['train_seconds']:.0f} s); FID {row['fid']:.1f} "
                  f"(floor {row['fid_floor']:.1f}), KID {row['kid']:.4f}, precision {row['precision']:.3f}, "
                  f"recall {row['recall']:.3f}, memorized {100 * row['memorized_share']:.1f}%", flush=True)
        if args.keep:
            with tempfile.TemporaryDirectory() as d:
                harness.save(d, family, family.cfg.to_dict(), {"step": 0, "epoch": trained["epochs"]},
                             {"val_bits_per_code": trained["val_bits_per_code"]})
                ckpt.export(d, args.keep)
    write_table(args.out, args.table)


class Data:
    """The dataset's images and labels, the tokenizer's codes of them, and the real Inception features."""

    def __init__(self, vqvae_uri: str, data_uri: str, flip: bool = False):
        self.vqvae, vcfg, _ = ckpt.load_vqvae(vqvae_uri, "cpu")
        self.vqvae.eval()
        self.vqvae_uri, self.data_uri = vqvae_uri, data_uri
        manifest = shards.load_manifest(data_uri)
        self.vocab = manifest["vocab"]
        self.size = manifest["image"]["height"]
        self.levels = list(self.vqvae.levels)
        self.grids = {lv: list(g) for lv, g in self.vqvae.grid_sizes(self.size).items()}
        self.sizes = {lv: q.K for lv, q in self.vqvae.quantizers.items()}
        self.images, self.arrays = {}, {}
        for split in ("train", "val", "test"):
            images, cols = shards.read_arrays(data_uri, (split,), ("category", "emotion", "vendor"))
            self.images[split] = images
            codes = self.encode(images)
            labels = {k: torch.tensor([self.vocab[k].index(v) for v in vals]) for k, vals in cols.items()}
            if flip and split == "train":  # mirror images: new code sequences with the same labels
                flipped = self.encode(np.ascontiguousarray(images[:, :, ::-1]))
                codes = {lv: np.concatenate([c, flipped[lv]]) for lv, c in codes.items()}
                labels = {k: torch.cat([v, v]) for k, v in labels.items()}
            self.arrays[split] = {**{lv: torch.from_numpy(c.reshape(len(c), -1)) for lv, c in codes.items()},
                                  **labels}
        self.heldout = np.concatenate([self.images["val"], self.images["test"]])
        rng = np.random.default_rng(0)
        self.train_subset = self.images["train"][np.sort(rng.choice(len(self.images["train"]),
                                                                    len(self.heldout), replace=False))]
        self.inception = InceptionFeatures("cpu")
        t0 = time.perf_counter()
        self.feat_heldout = self.features(self.heldout)
        self.feat_train = self.features(self.train_subset)
        self.floor = frechet_distance(FeatureStats.from_features(self.feat_train),
                                      FeatureStats.from_features(self.feat_heldout))
        self.train_pixels = flat_pixels(self.images["train"])
        held_nn, _ = nearest_neighbours(flat_pixels(self.heldout), self.train_pixels)
        self.heldout_to_train = held_nn.numpy()
        print(f"data: {len(self.images['train'])} train, {len(self.heldout)} held-out images; codes "
              f"{self.grids} of {self.sizes}; real features in {time.perf_counter() - t0:.0f} s; "
              f"real-vs-real FID floor {self.floor:.1f}", flush=True)

    def features(self, images: np.ndarray) -> np.ndarray:
        """Inception features of real images, cached on this machine by the images' bytes."""
        import hashlib

        from emojiray import storage

        path = storage.cache_dir("bench") / f"inception-{hashlib.sha256(images.tobytes()).hexdigest()[:24]}.npy"
        if path.exists():
            return np.load(path)
        feats = self.inception(images)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, feats)
        return feats

    @torch.no_grad()
    def encode(self, images: np.ndarray) -> dict[str, np.ndarray]:
        out = {lv: [] for lv in self.levels}
        for s in range(0, len(images), 512):
            x = to_model_input(torch.from_numpy(images[s:s + 512]), channels_last=False)
            for lv, c in self.vqvae.encode(x).items():
                out[lv].append(c.numpy())
        return {lv: np.concatenate(v) for lv, v in out.items()}


def train(name: str, args, overrides: list[str], data: Data):
    cfg = load_config(args.preset, [*overrides, "prior.epochs=100000", f"prior.max_seconds={args.seconds}",
                                    f"train.report_every_s={args.report_every}"])
    cond = cfg.prior.condition
    n_classes = 0 if cond == "none" else len(data.vocab[cond])
    train_arrays = data.arrays["train"]
    counts = np.bincount(train_arrays[cond].numpy(), minlength=n_classes).tolist() if n_classes else []
    spec = {"levels": data.levels, "grids": data.grids, "sizes": data.sizes, "n_classes": n_classes,
            "examples": len(train_arrays[data.levels[0]]), "vocab": data.vocab, "vqvae": data.vqvae_uri,
            "class_counts": counts}
    torch.manual_seed(cfg.train.seed)
    family = PriorFamily(cfg, spec)
    best = {"bits": math.inf, "state": None, "seconds": 0.0, "epoch": 0}

    def report(metrics, state):
        if metrics["val_bits_per_code"] < best["bits"]:
            best.update(bits=metrics["val_bits_per_code"], state=copy.deepcopy(family.model.state_dict()),
                        seconds=metrics["train_seconds"], epoch=metrics["epoch"])

    t0 = time.perf_counter()
    summary = harness.run(family, harness.in_memory_batches(train_arrays, cfg.prior.batch_size, cfg.train.seed),
                          harness.sequential_batches(data.arrays["val"], 256), report)
    family.model.load_state_dict(best["state"])
    family.model.eval()
    family.counts = counts
    params = sum(p.numel() for p in family.model.parameters())
    return family, {
        "recipe": name, "overrides": overrides, "preset": args.preset, "kind": cfg.prior.kind, "condition": cond,
        "params": params, "steps": summary["step"], "epochs": summary["epoch"],
        "train_seconds": round(summary["train_seconds"], 1), "wall_seconds": round(time.perf_counter() - t0, 1),
        "val_bits_per_code": round(best["bits"], 4), "best_seconds": round(best["seconds"], 1),
        "curve": [{"s": round(h["train_seconds"]), "val": round(h["val_bits_per_code"], 3),
                   "train": round(h.get("train_bits_per_code", math.nan), 3)} for h in summary["history"]],
        "flip": len(train_arrays[data.levels[0]]) > len(data.images["train"]),
        "tokenizer": data.vqvae_uri, **recipe_rows.provenance()}


def kept(name: str, args):
    """A prior exported by ``--keep`` and the training half of its recipe's last row in ``--out``."""
    from types import SimpleNamespace

    from emojiray.generate.sampler import Sampler

    rows = [r for r in recipe_rows.read(args.out) if r["recipe"] == name]
    if not rows:
        sys.exit(f"prior_recipes: no row of recipe {name!r} in {args.out} to take the training figures from")
    s = Sampler(args.prior, args.vqvae, device="cpu")
    family = SimpleNamespace(model=s.prior, layout=s.layout, n_classes=s.n_classes, counts=s.class_counts, cfg=s.cfg)
    keys = ("recipe", "overrides", "preset", "kind", "condition", "params", "steps", "epochs", "train_seconds",
            "wall_seconds", "val_bits_per_code", "best_seconds", "curve", "flip", "tokenizer")
    return family, {**{k: rows[-1][k] for k in keys if k in rows[-1]}, **recipe_rows.provenance()}


@torch.no_grad()
def reconstructions(args, data: Data) -> dict:
    """The tokenizer's reconstructions of the held-out images, scored like samples (memorized: n/a)."""
    codes = {lv: torch.from_numpy(c) for lv, c in data.encode(data.heldout).items()}
    images = np.concatenate([from_model_output(data.vqvae.decode_codes({lv: c[s:s + 256] for lv, c in codes.items()})
                                               .float()) for s in range(0, len(data.heldout), 256)])
    return {"recipe": "reconstructions", "overrides": [], "preset": "", "kind": "-", "condition": "-",
            "params": sum(p.numel() for p in data.vqvae.parameters()), "steps": 0, "epochs": 0,
            "train_seconds": 0.0, "wall_seconds": 0.0, "val_bits_per_code": None, "best_seconds": 0.0,
            "tokenizer": data.vqvae_uri, **recipe_rows.provenance(),
            **score(images, data, args, "reconstructions", "heldout", memorized=False),
            "sampling": "-", "samples_per_s": None}


@torch.no_grad()
def measure(family: PriorFamily, setting: str, args, data: Data, name: str) -> dict:
    cfg = copy.deepcopy(family.cfg)
    keys = ("temperature", "top_k", "top_p", "choice_temperature", "maskgit_steps", "guidance")
    for key, value in zip(keys, setting.split(",") if setting else []):
        if value.strip():
            set_value(cfg, f"prior.{key}", value.strip())
    pc = cfg.prior
    gen = torch.Generator().manual_seed(0)
    n, images = args.samples, []
    cond_ids = None
    if family.n_classes:
        cond_ids = torch.from_numpy(condition_ids({"mode": "data"}, list(range(family.n_classes)), family.counts,
                                                  0, n, seed=0))
    t0 = time.perf_counter()
    for s in range(0, n, 250):
        c = None if cond_ids is None else cond_ids[s:s + 250]
        codes = sample_codes(family.model, pc.kind, family.layout, min(250, n - s), c, pc, gen)
        images.append(from_model_output(data.vqvae.decode_codes(codes).float()))
    images = np.concatenate(images)
    sample_seconds = time.perf_counter() - t0
    return {"sampling": setting or "default", **{key: get_value(cfg, f"prior.{key}") for key in keys},
            "samples_per_s": round(n / sample_seconds, 1),
            **score(images, data, args, name, setting.replace(",", "_") or "default")}


def score(images: np.ndarray, data: Data, args, name: str, tag: str, memorized: bool = True) -> dict:
    """FID/KID/precision/recall against the held-out images, FID against training images, memorized share."""
    feats = data.inception(images)
    fid = frechet_distance(FeatureStats.from_features(feats), FeatureStats.from_features(data.feat_heldout))
    fid_train = frechet_distance(FeatureStats.from_features(feats), FeatureStats.from_features(data.feat_train))
    kid_mean, kid_std = kid(feats, data.feat_heldout)
    m = min(len(feats), len(data.feat_heldout))
    precision, recall = precision_recall(data.feat_heldout[:m], feats[:m], k=3)
    share = None
    if memorized:
        dist, _ = nearest_neighbours(flat_pixels(images), data.train_pixels)
        share = memorization(dist.numpy(), data.heldout_to_train)["share"]
    if args.sheets:
        Path(args.sheets).mkdir(parents=True, exist_ok=True)
        Path(args.sheets, f"{name}_{tag}.png").write_bytes(to_png_bytes(grid(images[:64], ncols=8)))
    return {"samples": len(images), "heldout_images": len(data.heldout),
            "fid": round(fid, 2), "fid_train": round(fid_train, 2), "fid_floor": round(data.floor, 2),
            "kid": round(kid_mean, 5), "kid_std": round(kid_std, 5), "precision": round(precision, 4),
            "recall": round(recall, 4), "pr_images": m, "memorized_share": None if share is None else round(share, 4)}


def write_table(jsonl: str, md: str) -> None:
    intro = ["# Prior recipes at 32 px on 2 CPU cores (bare loop; samples against the held-out split)", "",
             "Written by `bench/prior_recipes.py` (each row's command, tokenizer, date and revision are in "
             f"`{Path(jsonl).name}`). FID floor = real-vs-real (as many training images as held-out ones).", ""]
    columns = ["recipe", "overrides", "params", "train s", "val bits/code (best at s)",
               "sampling (T, k, p, choice T, steps, guidance)", "samples/s", "FID held-out", "floor", "FID train",
               "KID", "precision", "recall", "memorized", "date", "rev"]
    cells = []
    for r in recipe_rows.read(jsonl):
        scores = [f"{r['fid']:.1f}", f"{r['fid_floor']:.1f}", f"{r['fid_train']:.1f}", f"{r['kid']:.4f}",
                  f"{r['precision']:.3f}", f"{r['recall']:.3f}"]
        if r["recipe"] == "reconstructions":  # the tokenizer's ceiling: no training, no sampling
            cells.append([f"reconstructions of the held-out images (`{r['tokenizer']}`)", "-",
                          f"{r['params'] / 1e6:.2f} M", "-", "-", "-", "-", *scores, "-", r["date"], r["git_revision"]])
            continue
        sampling = (f"{r['temperature']:g}, {r['top_k']}, {r['top_p']:g}, {r['choice_temperature']:g}, "
                    f"{r['maskgit_steps']}, {r.get('guidance', 1.0):g}")
        flips = " + mirror images (--flip)" if r.get("flip") else ""
        cells.append([r["recipe"], f"`{' '.join(r['overrides']) or '-'}`{flips}", f"{r['params'] / 1e6:.2f} M",
                      f"{r['train_seconds']:.0f}", f"{r['val_bits_per_code']:.3f} ({r['best_seconds']:.0f})", sampling,
                      f"{r['samples_per_s']:.0f}", *scores, f"{100 * r['memorized_share']:.1f}%", r["date"],
                      r["git_revision"]])
    recipe_rows.write_markdown(md, intro, columns, cells)


if __name__ == "__main__":
    main()
