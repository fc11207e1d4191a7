"""`emojiray extract-codes`: encode every split into code shards with a Ray Data actor pool."""

from __future__ import annotations

from emojiray.cli.common import config_from_args, finish_parser


def register(sub) -> None:
    p = sub.add_parser("extract-codes", help="encode a dataset into VQ code shards (Ray Data actors)",
                       description="Encode every split into VQ code shards. With --set prior.mirror=true the "
                                   "train split also holds the codes of its images flipped left to right.")
    p.add_argument("--vqvae", required=True, help="tokenizer URI (e.g. <train out>/vqvae)")
    p.add_argument("--data", required=True, help="dataset URI")
    p.add_argument("--out", required=True, help="code shards URI")
    finish_parser(p, run, "replace codes of another VQ-VAE or dataset at --out")


def run(args) -> int:
    from emojiray.data.codes import extract_codes

    cfg = config_from_args(args)
    extract_codes(args.vqvae, args.data, args.out, cfg.ray, mirror=cfg.prior.mirror, force=args.force)
    return 0
