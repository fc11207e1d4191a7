"""`emojiray train-upscaler`: a low-resolution encoder into the VQ-VAE's codes (super-resolution), trained with
Ray Train through the one driver (:mod:`emojiray.train.driver`)."""

from __future__ import annotations

from emojiray.cli.common import config_from_args, finish_parser
from emojiray.errors import EmojirayError


def register(sub) -> None:
    p = sub.add_parser("train-upscaler",
                       help="train the super-resolution model: low-res emoji -> the VQ-VAE's full-res codes")
    p.add_argument("--data", help="dataset URI (from `emojiray data`)")
    p.add_argument("--vqvae", help="VQ-VAE URI whose codes the upscaler predicts")
    p.add_argument("--out", help="model folder (writes meta.json, weights, upscaler.json and the Ray Train run in train/)")
    p.add_argument("--epochs", type=int, help="training epochs (default: upscale.epochs)")
    p.add_argument("--factor", type=int, help="downsampling factor (default: upscale.factor)")
    finish_parser(p, run, "replace an upscaler of another dataset or VQ-VAE at --out")


def run(args) -> int:
    from emojiray.extensions.upscale import train_upscaler

    if not args.data or not args.vqvae or not args.out:
        raise EmojirayError("give --data DATA, --vqvae VQVAE and --out URI")
    cfg = config_from_args(args, **{"upscale.epochs": args.epochs, "upscale.factor": args.factor})
    report = train_upscaler(args.data, args.vqvae, args.out, cfg, force=args.force)  # Ray Train through the one driver
    val = report["val"]
    print(f"upscaler -> {args.out} ({report['input_size']} -> {report['output_size']} px; "
          f"val code accuracy {val['code_accuracy']:.3f}, PSNR {val['psnr']:.2f} dB)")
    return 0
