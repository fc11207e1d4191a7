"""`emojiray train-vqvae`: train the VQ-VAE tokenizer with Ray Train."""

from __future__ import annotations

from emojiray.cli.common import config_from_args, finish_parser


def register(sub) -> None:
    p = sub.add_parser("train-vqvae", help="train a VQ-VAE / VQ-VAE-2 tokenizer on prepared shards")
    p.add_argument("--data", required=True, help="dataset URI (from `emojiray data prepare`)")
    p.add_argument("--out", required=True, help="run URI for checkpoints, logs and the model")
    p.add_argument("--resume", action="store_true", help="continue the run at --out from its latest checkpoint")
    finish_parser(p, run, "delete an existing run at --out and start over")


def run(args) -> int:
    from emojiray.train.vqvae_loop import train_vqvae

    train_vqvae(config_from_args(args), args.data, args.out, resume=args.resume, force=args.force)
    return 0
