"""`emojiray eval-vqvae`: reconstruction metrics, rFID and codebook health on a held-out split."""

from __future__ import annotations

from emojiray.cli.common import config_from_args, finish_parser
from emojiray.config import EVAL_SPLITS


def register(sub) -> None:
    p = sub.add_parser("eval-vqvae", help="measure a trained tokenizer on held-out images")
    p.add_argument("--checkpoint", required=True, help="model URI (e.g. <train out>/vqvae)")
    p.add_argument("--data", required=True, help="dataset URI")
    p.add_argument("--out", required=True, help="where to write eval_vqvae.json and recon_grid.png")
    p.add_argument("--split", choices=EVAL_SPLITS,
                   help="split to measure: heldout = val + test (default: eval.split)")
    p.add_argument("--no-fid", action="store_true", help="skip rFID (no Inception forward passes)")
    p.add_argument("--fid-images", type=int, help="images for rFID (default: eval.fid_images; 0 = all)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    finish_parser(p, run, "replace the measurement of another model or dataset at --out")


def run(args) -> int:
    from emojiray.eval.vqvae import eval_vqvae

    cfg = config_from_args(args, **{"eval.split": args.split, "eval.fid_images": args.fid_images}).eval
    eval_vqvae(args.checkpoint, args.data, args.out, split=cfg.split, fid=not args.no_fid,
               fid_images=cfg.fid_images, batch_size=cfg.batch_size, device=args.device,
               force=args.force)
    return 0
