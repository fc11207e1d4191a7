"""Benchmark: sampling speed of the three priors with VQ-VAE decoding, and a large sample run with its FID.

    python bench/sampling_speed.py --preset full --out results/bench/sampling_speed.json
    python bench/sampling_speed.py --end-to-end 50000 --real results/bench/data-64
    python bench/sampling_speed.py --prior maskgit=URI --prior transformer=URI [--vqvae URI] ...
    python bench/sampling_speed.py --preset smoke --batch-sizes 8 --seconds 2 --threads 1 --out /tmp/ss.json
    python bench/sampling_speed.py --kinds maskgit transformer pixelsnail --batch-sizes 8 64 512 --seconds 1 --budget 60

Measures samples/s of each prior (``--kinds``) at each batch size, from code sampling to decoded
uint8 images in CPU memory, as ``Sampler.generate`` makes them: one warm-up call per (kind,
batch), then calls until ``--seconds`` have passed; with ``--budget`` the measurements stop before
that many seconds (see there). The transformer is also measured without its
KV cache (``transformer_nocache``: one full forward pass per code position, as the reference
sampler does), so the speed-up of the cache comes from the same run. Sampling is unconditional
(no class ids) with the prior's default parameters; a conditional prior then samples through its
null class, at the cost of a conditional sample (no guidance without a condition).

The models are trained checkpoints (``--prior KIND=URI``) or, by default, random-initialised
ones at the sizes of ``--preset`` (speed does not depend on the weights; the random priors are
unconditional, which costs the same as above).

``--end-to-end N`` (with ``--real``, a prepared dataset at the same image size) then times a
whole sample run through the Ray actor pool (``emojiray sample`` without PNGs, the run's
default conditions, the fastest prior at its fastest batch size unless ``--e2e-kind``) and its
evaluation (``emojiray eval-samples``: FID, KID, precision, recall, memorization), each in
wall-clock time with Ray and model start-up included. A first evaluation against a dataset also
computes the real images' features, which are cached for later runs.

Records ratios against the reference implementation's PixelSNAIL sampler (issue 5: one H100,
64 px, decoding included) at the batch sizes it was measured at, and each prior's best samples/s
against its target. A measurement, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from emojiray import storage
from emojiray.config import Config, load_config
from emojiray.data import shards
from emojiray.eval.samples import eval_samples
from emojiray.generate.sample_run import sample_run
from emojiray.generate.sampler import Sampler
from emojiray.images import from_model_output
from emojiray.models import build_vqvae
from emojiray.models.codes import CodeLayout
from emojiray.models.prior import build_prior
from emojiray.registry import PRIORS
from emojiray.report import baselines as B
from emojiray.models import checkpoint as ckpt

# The seed's reference sampler (issue 5): hierarchical PixelSNAIL on one H100 at 64 px, one full
# forward pass per code position, VQ-VAE decoding included. Samples/s by batch size.
REFERENCE = {"device": f"{B.REFERENCE_DEVICE} (reference run, issue 5)", "prior": B.REFERENCE_SAMPLER["prior"],
             "image_size": B.REFERENCE_IMAGE_SIZE, "samples_per_s": B.REFERENCE_SAMPLER["samples_per_s"]}
# Samples/s per prior (best batch size), and the large run: 50,000 samples and their FID.
TARGETS = {k: B.TARGETS[k] for k in ("samples_per_s", "end_to_end")}
NOCACHE = "transformer_nocache"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="full", help="model sizes of the random models; Ray, sample, eval settings")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--prior", action="append", default=[], metavar="KIND=URI",
                    help="a trained prior checkpoint (repeatable; default: random models at the preset's sizes)")
    ap.add_argument("--vqvae", help="VQ-VAE checkpoint of the --prior checkpoints (default: the one they name)")
    ap.add_argument("--kinds", nargs="+", choices=PRIORS.names(),
                    help="priors to measure (default: those given with --prior, else all three)")
    ap.add_argument("--batch-sizes", type=int, nargs="+",
                    help="default: 8 64 256 1024 on a GPU, 8 64 on CPU")
    ap.add_argument("--seconds", type=float, default=10, help="timed sampling per (prior, batch size)")
    ap.add_argument("--budget", type=float, default=0, metavar="SECONDS",
                    help="time for all measurements (0 = no limit): a (prior, batch size) that would end past it "
                         "(two calls, predicted from the same sampler's previous batch size, scaled linearly) "
                         "is skipped and listed under 'skipped'; order --kinds by priority")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads of the measurements (0 = torch's default; 1 on a busy CPU)")
    ap.add_argument("--end-to-end", type=int, default=0, metavar="N",
                    help="also time a sample run of N samples and its evaluation (0 = skip)")
    ap.add_argument("--e2e-kind", choices=PRIORS.names(), help="prior of the end-to-end run (default: the fastest)")
    ap.add_argument("--real", help="prepared dataset the end-to-end samples are evaluated against")
    ap.add_argument("--real-images", type=int, default=0, help="real images per split for the evaluation (0 = all)")
    ap.add_argument("--work", default="results/bench/sampling_run", help="end-to-end run directory")
    ap.add_argument("--out", default="results/bench/sampling_speed.json")
    args = ap.parse_args()

    priors = dict(parse_prior(ap, spec) for spec in args.prior)
    kinds = args.kinds or list(priors) or list(PRIORS.names())
    missing = [k for k in kinds if priors and k not in priors]
    if missing:
        ap.error(f"no --prior checkpoint for {', '.join(missing)}")
    if args.end_to_end > 0 and not args.real:
        ap.error("--end-to-end needs --real DATA_URI")
    if args.e2e_kind and args.e2e_kind not in kinds:
        ap.error(f"--e2e-kind {args.e2e_kind} is not among the measured priors ({', '.join(kinds)})")
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    batch_sizes = args.batch_sizes or ([8, 64, 256, 1024] if cuda else [8, 64])
    cfg = load_config(args.preset, args.overrides)
    real_size = shards.load_manifest(args.real)["image"]["height"] if args.end_to_end > 0 else None

    with tempfile.TemporaryDirectory(prefix="sampling-speed-") as tmp:
        vqvae = args.vqvae
        if not priors:
            priors, vqvae = random_checkpoints(cfg, kinds, Path(tmp))
        results, skipped, image_size = [], [], None
        budget = Budget(args.budget)
        for kind in kinds:
            image_size, rows = measure_prior(kind, priors[kind], vqvae, batch_sizes, args.seconds, cuda, budget)
            results += rows
        skipped = budget.skipped

        best = {}
        for r in results:
            best[r["prior"]] = max(best.get(r["prior"], 0.0), r["samples_per_s"])
        device = torch.cuda.get_device_name(0) if cuda else f"cpu ({os.cpu_count()} cores)"
        record = {
            "benchmark": "sampling_speed",
            "device": device,
            "date": dt.date.today().isoformat(),
            "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
            "preset": args.preset,
            "checkpoints": {k: priors[k] for k in kinds} if args.prior else "random (preset sizes)",
            "image_size": image_size,
            "seconds_per_measurement": args.seconds,
            "budget_seconds": args.budget or None,
            "skipped": skipped,
            "threads": torch.get_num_threads(),
            "results": results,
            "best": best,
            "kv_cache_speedup": kv_cache_speedup(results),
            "targets": {k: {"target": t, "best": best.get(k), "ratio": best[k] / t if k in best else None}
                        for k, t in TARGETS["samples_per_s"].items()},
            "reference": REFERENCE,
            "comparable_to_reference": cuda and "H100" in device and image_size == REFERENCE["image_size"],
        }
        if args.end_to_end > 0:
            if real_size != image_size:
                ap.error(f"--real {args.real} holds {real_size} px images, the models make {image_size} px")
            if not best:
                ap.error("--end-to-end: no prior was measured (all skipped by --budget)")
            e2e_kind = args.e2e_kind or max(best.keys() & set(kinds), key=best.__getitem__)
            e2e_batch = max((r for r in results if r["prior"] == e2e_kind), key=lambda r: r["samples_per_s"])
            record["end_to_end"] = end_to_end(cfg, priors[e2e_kind], vqvae, args, e2e_batch["batch_size"], cuda)

    storage.write_json(args.out, record)
    print_summary(record, args.out)


def parse_prior(ap: argparse.ArgumentParser, spec: str) -> tuple[str, str]:
    kind, sep, uri = spec.partition("=")
    if not sep or kind not in PRIORS.names() or not uri:
        ap.error(f"--prior {spec!r}: expected KIND=URI with KIND one of {', '.join(PRIORS.names())}")
    return kind, uri


def random_checkpoints(cfg: Config, kinds: list[str], root: Path) -> tuple[dict[str, str], str]:
    """({kind: prior URI}, VQ-VAE URI): random-initialised models at the preset's sizes, saved
    with the metadata ``Sampler`` reads. The priors are unconditional (see the module docstring)."""
    size = cfg.data.size
    vq = build_vqvae(cfg.model, size)
    vq_dir = root / "vqvae"
    ckpt.save(vq_dir, vq, "vqvae", cfg.to_dict(), step=0, epoch=0)
    grids = vq.grid_sizes(size)
    sizes = {lv: q.K for lv, q in vq.quantizers.items()}
    layout = CodeLayout.from_dicts(vq.levels, grids, sizes)
    priors = {}
    for kind in kinds:
        kcfg = dataclasses.replace(cfg, prior=dataclasses.replace(cfg.prior, kind=kind, condition="none"))
        prior = build_prior(kcfg.prior, layout, n_classes=0)
        priors[kind] = str(root / f"prior-{kind}")
        ckpt.save(priors[kind], prior, "prior", kcfg.to_dict(), step=0, epoch=0,
                  layout={"levels": list(layout.levels), "grids": {lv: list(g) for lv, g in grids.items()},
                          "sizes": sizes},
                  n_classes=0, vocab={}, vqvae=str(vq_dir), class_counts=[])
    return priors, str(vq_dir)


class Budget:
    """``--budget``: seconds for all measurements from the first one on (0 = no limit). A measurement
    runs when the time used so far plus its predicted time fits: two calls (warm-up + one timed),
    each as long as the same sampler's call at its previous batch size, scaled by the batch size."""

    def __init__(self, seconds: float):
        self.seconds, self.t0, self.skipped = seconds, None, []
        self.last: dict[str, tuple[int, float]] = {}  # sampler -> (batch size, seconds per call)

    def admits(self, name: str, batch: int) -> bool:
        if self.t0 is None:
            self.t0 = time.perf_counter()
        if not self.seconds:
            return True
        prev = self.last.get(name)
        predicted = 2 * prev[1] * batch / prev[0] if prev else 0.0
        used = time.perf_counter() - self.t0
        if used + predicted <= self.seconds:
            return True
        self.skipped.append({"prior": name, "batch_size": batch, "predicted_seconds": predicted,
                             "used_seconds": used})
        print(f"  {name:20s} batch {batch:5d}: skipped (--budget {self.seconds:g} s: {used:.0f} s used, "
              f"{predicted:.0f} s predicted)", flush=True)
        return False

    def record(self, name: str, batch: int, result: dict) -> None:
        self.last[name] = (batch, result["seconds"] * batch / result["samples"])


def measure_prior(kind: str, prior: str, vqvae: str | None, batch_sizes: list[int], seconds: float,
                  cuda: bool, budget: Budget | None = None) -> tuple[int, list[dict]]:
    """(image size, one result per sampler and batch size) of one prior checkpoint."""
    budget = budget or Budget(0)
    sampler = Sampler(prior, vqvae)
    if sampler.kind != kind:
        raise SystemExit(f"--prior {kind}={prior} is a {sampler.kind} prior")
    rows = []
    for name, fn in samplers(sampler).items():
        for bs in batch_sizes:
            if not budget.admits(name, bs):
                continue
            r = {"prior": name, "batch_size": bs, **measure(fn, bs, seconds, cuda)}
            budget.record(name, bs, r)
            ref = REFERENCE["samples_per_s"].get(bs)
            r["ratio_vs_reference"] = r["samples_per_s"] / ref if ref else None
            print(f"  {name:20s} batch {bs:5d}: {r['samples_per_s']:10,.1f} samples/s", flush=True)
            rows.append(r)
    return sampler.image_size, rows


def samplers(sampler: Sampler) -> dict[str, Callable[[int], np.ndarray]]:
    """{name: n -> (n, H, W, 3) uint8 images}: the prior as Sampler.generate runs it (unconditional,
    default parameters) and, for the transformer, the same without its KV cache."""
    params, generator = sampler.params(), sampler.generator(0)
    runs = {sampler.kind: lambda n: sampler.generate(None, n, generator, params, batch_size=n)[0]}
    if sampler.kind != "transformer":
        return runs

    @torch.no_grad()
    def nocache(n: int) -> np.ndarray:
        with sampler._autocast():  # the precision Sampler.generate samples and decodes in
            tokens = sampler.prior.generate(n, None, temperature=params["temperature"], top_k=params["top_k"],
                                            top_p=params["top_p"], guidance=params["guidance"],
                                            generator=generator, use_cache=False)
            decoded = sampler.vqvae.decode_codes(sampler.layout.unflatten(tokens))
        return from_model_output(decoded.float())

    return {**runs, NOCACHE: nocache}


def measure(fn: Callable[[int], np.ndarray], batch: int, seconds: float, cuda: bool) -> dict:
    """Samples/s of ``fn(batch)``: one warm-up call, then whole calls until ``seconds`` have passed."""

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    fn(batch)
    sync()
    calls, t0 = 0, time.perf_counter()
    while True:
        fn(batch)
        sync()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            break
    return {"samples_per_s": calls * batch / elapsed, "seconds": elapsed, "samples": calls * batch}


def kv_cache_speedup(results: list[dict]) -> dict[int, float]:
    """{batch size: transformer samples/s with the KV cache / without it}."""
    rate = {(r["prior"], r["batch_size"]): r["samples_per_s"] for r in results}
    return {bs: rate[("transformer", bs)] / rate[(NOCACHE, bs)] for (p, bs) in rate
            if p == NOCACHE and ("transformer", bs) in rate}


def end_to_end(cfg: Config, prior: str, vqvae: str | None, args: argparse.Namespace, batch_size: int,
               cuda: bool) -> dict:
    """Time a sample run of ``args.end_to_end`` samples (no PNGs) and its evaluation against ``args.real``."""
    scfg = dataclasses.replace(cfg.sample, batch_size=batch_size, png=False,
                               shard_size=5000 if cuda else cfg.sample.shard_size)
    ecfg = dataclasses.replace(cfg.eval, real_images=args.real_images)
    samples, n = storage.join(args.work, "samples"), args.end_to_end
    if cuda:
        torch.cuda.empty_cache()  # hand the measurements' cached GPU memory over to the actors
    t0 = time.perf_counter()
    manifest = sample_run(prior, samples, n, vqvae=vqvae, cfg=scfg, ray_cfg=cfg.ray, force=True)
    t1 = time.perf_counter()
    ev = eval_samples(samples, args.real, storage.join(args.work, "eval"), cfg=ecfg, ray_cfg=cfg.ray)
    t2 = time.perf_counter()
    target = TARGETS["end_to_end"]
    return {
        "prior": manifest["kind"], "samples": n, "batch_size": batch_size, "shard_size": scfg.shard_size,
        "actors": manifest["actors"], "sample_device": manifest["device"], "eval_device": ev["device"],
        "sample_seconds": t1 - t0, "sample_samples_per_s": manifest["samples_per_s"],
        "eval_seconds": t2 - t1, "total_seconds": t2 - t0,
        "target_seconds": target["seconds"], "target_samples": target["samples"],
        "meets_target": n >= target["samples"] and t2 - t0 <= target["seconds"],
        "real": args.real, "real_images": ev["real_images"],
        **{k: ev[k] for k in ("fid", "kid", "kid_std", "precision", "recall", "memorized_share")},
    }


def print_summary(record: dict, out: str) -> None:
    models = "random models" if isinstance(record["checkpoints"], str) else "trained checkpoints"
    print(f"\n{record['device']}, {record['image_size']} px, {models}:")
    print(f"  {'prior':20s} {'batch':>6s} {'samples/s':>11s} {'vs reference':>13s}")
    for r in record["results"]:
        ratio = f"{r['ratio_vs_reference']:12.2f}x" if r["ratio_vs_reference"] is not None else f"{'':13s}"
        print(f"  {r['prior']:20s} {r['batch_size']:6d} {r['samples_per_s']:11,.1f} {ratio}")
    for kind, t in record["targets"].items():
        if t["best"] is not None:
            print(f"  {kind}: best {t['best']:,.1f} samples/s = {t['ratio']:.3f}x its target of {t['target']:,}")
    if record["kv_cache_speedup"]:
        print("  KV cache speed-up: " + ", ".join(f"{v:.2f}x at batch {bs}"
                                                  for bs, v in record["kv_cache_speedup"].items()))
    e = record.get("end_to_end")
    if e:
        print(f"  end to end ({e['prior']}, {e['samples']:,} samples): sampling {e['sample_seconds']:.1f} s + "
              f"evaluation {e['eval_seconds']:.1f} s = {e['total_seconds']:.1f} s (target {e['target_seconds']} s "
              f"for {e['target_samples']:,}), FID {fmt(e['fid'], 2)}, KID {fmt(e['kid'], 4)}, "
              f"precision {fmt(e['precision'], 3)}, recall {fmt(e['recall'], 3)}, "
              f"memorized {fmt(100 * e['memorized_share'], 1)}%")
    for s in record.get("skipped") or []:
        print(f"  {s['prior']} at batch {s['batch_size']}: skipped by --budget")
    print(f"-> {out}")


def fmt(x: float | None, digits: int) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


if __name__ == "__main__":
    main()
