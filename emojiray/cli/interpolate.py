"""`emojiray interpolate A B --steps 10`: paths between two emoji (pixels, VQ-VAE latents, MaskGIT prior)."""

from __future__ import annotations

from emojiray.cli.common import add_extension_args, config_from_args, evaluate_in_task, extension_paths
from emojiray.errors import EmojirayError


def register(sub) -> None:
    p = sub.add_parser("interpolate", help="interpolate between two emoji in latent space and through the prior")
    p.add_argument("inputs", nargs="*", metavar="FILE_OR_NAME",
                   help="two image files or emoji names (looked up in the run's dataset)")
    p.add_argument("--steps", type=int, help="frames after the first (default: interpolate.steps)")
    p.add_argument("--vendor", default="", help="vendor whose drawing of a named emoji to use (default: any)")
    add_extension_args(p, run,
                       "measure path smoothness on seeded pairs of held-out emoji (interpolate.json, interpolate.png)",
                       "MaskGIT prior URI (without one: pixel and latent paths only)")


def run(args) -> int:
    cfg = config_from_args(args, **{"interpolate.steps": args.steps})
    paths = extension_paths(args, prior=args.prior)
    if args.evaluate:
        paths.need("data")
        from emojiray.extensions.interpolate import evaluate_interpolation

        evaluate_in_task(args, cfg, paths, "interpolate.json", evaluate_interpolation, prior=paths.prior)
        return 0
    if len(args.inputs) != 2:
        raise EmojirayError(f"give exactly two image files or emoji names (got {len(args.inputs)}), or --evaluate")
    from emojiray.extensions.interpolate import interpolate

    interpolate(args.inputs[0], args.inputs[1], paths, cfg, paths.out, vendor=args.vendor, seed=args.seed)
    return 0
