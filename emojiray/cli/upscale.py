"""`emojiray upscale FILE`: super-resolution through the VQ-VAE (low-res emoji -> full-res codes -> decode)."""

from __future__ import annotations

from emojiray.cli.common import config_from_args, evaluate_in_task, extension_paths, finish_parser
from emojiray.errors import EmojirayError


def register(sub) -> None:
    p = sub.add_parser("upscale",
                       help="upscale emoji (e.g. 32 -> 64 px) through the VQ-VAE's codes with a trained upscaler")
    p.add_argument("inputs", nargs="*", metavar="FILE_OR_NAME",
                   help="image files or emoji names (looked up in the run's dataset); an input larger than "
                        "the low-res size is first downsampled to it")
    p.add_argument("--run", default="", help="a pipeline output (finds data, VQ-VAE and the upscaler)")
    p.add_argument("--upscaler", help="upscaler URI (from `emojiray train-upscaler`)")
    p.add_argument("--vqvae", help="VQ-VAE URI (default: the upscaler's)")
    p.add_argument("--data", help="dataset URI (emoji names, held-out images)")
    p.add_argument("--out", help="output folder (default: RUN/extensions)")
    p.add_argument("--evaluate", action="store_true",
                   help="measure on held-out emoji against bicubic upscaling (upscale.json, upscale.png)")
    finish_parser(p, run, "--evaluate: replace the measurement of another upscaler or dataset at --out")


def run(args) -> int:
    cfg = config_from_args(args)
    paths = extension_paths(args, upscaler=args.upscaler)
    if args.evaluate:
        from emojiray.extensions.upscale import evaluate_upscale

        report = evaluate_in_task(args, cfg, paths, "upscale.json", evaluate_upscale, upscaler=paths.upscaler)
        up, bi = report["methods"]["upscaler"], report["methods"]["bicubic"]
        print(f"upscale: PSNR {up['psnr']:.2f} dB (bicubic {bi['psnr']:.2f}), SSIM {up['ssim']:.3f} "
              f"(bicubic {bi['ssim']:.3f}) -> {paths.out}")
        return 0
    if not args.inputs:
        raise EmojirayError("give one or more image files or emoji names (or --evaluate)")
    from emojiray.extensions.upscale import upscale_files

    upscale_files(args.inputs, paths, paths.out)
    return 0
