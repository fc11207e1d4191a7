"""`emojiray inpaint FILE --mask box:x0,y0,x1,y1`: MaskGIT re-samples the codes under a mask (and measures it)."""

from __future__ import annotations

from emojiray.cli.common import add_extension_args, config_from_args, evaluate_in_task, extension_paths
from emojiray.errors import EmojirayError


def register(sub) -> None:
    p = sub.add_parser("inpaint", help="fill a masked region of emoji with a MaskGIT prior")
    p.add_argument("inputs", nargs="*", metavar="FILE_OR_NAME",
                   help="image files or emoji names (looked up in the run's dataset)")
    p.add_argument("--mask", help="box:x0,y0,x1,y1 (pixels, or fractions like 0.25) or a mask image (white = fill)")
    p.add_argument("-n", "--completions", type=int, help="completions per input (default: inpaint.completions)")
    p.add_argument("--condition", help="condition value of the prior, e.g. happy (default: unconditional)")
    add_extension_args(p, run, "measure on seeded boxes of held-out emoji (inpaint.json, inpaint.png)",
                       "MaskGIT prior URI")


def run(args) -> int:
    cfg = config_from_args(args, **{"inpaint.completions": args.completions})
    paths = extension_paths(args, prior=args.prior)
    if args.evaluate:
        from emojiray.extensions.inpaint import evaluate_inpaint

        evaluate_in_task(args, cfg, paths, "inpaint.json", evaluate_inpaint, prior=paths.prior)
        return 0
    if not args.inputs or not args.mask:
        raise EmojirayError("give --mask and one or more image files or emoji names (or --evaluate)")
    from emojiray.extensions.inpaint import inpaint_files

    inpaint_files(args.inputs, args.mask, paths, cfg, paths.out, cfg.inpaint.completions,
                  condition=args.condition, seed=args.seed)
    return 0
