"""`emojiray eval-samples`: FID, KID, precision/recall, memorization and diversity of a sample run."""

from __future__ import annotations

from emojiray.cli.common import config_from_args, finish_parser


def register(sub) -> None:
    p = sub.add_parser("eval-samples", help="measure generated samples against real emoji")
    p.add_argument("--samples", required=True, help="sample run URI (from `emojiray sample`)")
    p.add_argument("--real", required=True, help="dataset URI (its held-out and train splits)")
    p.add_argument("--out", required=True, help="where to write eval_samples.json and the sheets")
    p.add_argument("--force", action="store_true", help="replace the measurement of other samples or data at --out")
    p.add_argument("--real-images", type=int, help="real images per split with features (default: "
                                                   "eval.real_images; 0 = all)")
    finish_parser(p, run)


def run(args) -> int:
    from emojiray.eval.samples import eval_samples

    cfg = config_from_args(args, **{"eval.real_images": args.real_images})
    eval_samples(args.samples, args.real, args.out, cfg=cfg.eval, ray_cfg=cfg.ray, force=args.force)
    return 0
