"""`emojiray restyle --to VENDOR FILE ...`: redraw emoji in another vendor's style (and measure it)."""

from __future__ import annotations

from emojiray.cli.common import add_extension_args, config_from_args, evaluate_in_task, extension_paths
from emojiray.errors import EmojirayError


def register(sub) -> None:
    p = sub.add_parser("restyle", help="redraw emoji in another vendor's style with a vendor-conditioned MaskGIT")
    p.add_argument("inputs", nargs="*", metavar="FILE_OR_NAME",
                   help="image files or emoji names (looked up in the run's dataset)")
    p.add_argument("--to", dest="target", help="target vendor (e.g. twitter)")
    p.add_argument("--classifier", help="emoji classifier for the vendor agreement metric")
    p.add_argument("--share", type=float, help="share of codes re-sampled (default: chosen on validation)")
    p.add_argument("--variants", type=int, default=1, help="restyled variants per input")
    add_extension_args(p, run, "measure on held-out emoji drawn by both vendors (restyle.json, restyle.png)",
                       "MaskGIT prior conditioned on the vendor", prior_dest="vendor_prior")


def run(args) -> int:
    cfg = config_from_args(args, **{"restyle.share": args.share})
    paths = extension_paths(args, vendor_prior=args.vendor_prior, classifier=args.classifier)
    if args.evaluate:
        from emojiray.extensions.restyle import evaluate_restyle

        evaluate_in_task(args, cfg, paths, "restyle.json", evaluate_restyle, prior=paths.vendor_prior)
        return 0
    if not args.inputs or not args.target:
        raise EmojirayError("give --to VENDOR and one or more image files or emoji names (or --evaluate)")
    if args.variants < 1:
        raise EmojirayError(f"--variants must be >= 1, got {args.variants}")
    from emojiray.extensions.restyle import restyle_files

    restyle_files(args.inputs, args.target, paths, cfg, paths.out, variants=args.variants,
                  share=cfg.restyle.share, seed=args.seed)
    return 0
