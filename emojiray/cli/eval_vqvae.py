"""`emojiray eval-vqvae`: reconstruction metrics, rFID and codebook health on a held-out split."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("eval-vqvae", help="measure a trained tokenizer on held-out images")
    p.add_argument("--checkpoint", required=True, help="model URI (e.g. <train out>/vqvae)")
    p.add_argument("--data", required=True, help="dataset URI")
    p.add_argument("--out", required=True, help="where to write eval_vqvae.json and recon_grid.png")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--no-fid", action="store_true", help="skip rFID (no Inception forward passes)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.set_defaults(func=run)


def run(args) -> int:
    from emojiray.eval.vqvae import eval_vqvae

    eval_vqvae(args.checkpoint, args.data, args.out, split=args.split, fid=not args.no_fid, device=args.device)
    return 0
