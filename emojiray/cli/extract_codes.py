"""`emojiray extract-codes`: encode every split into code shards with a Ray Data actor pool."""

from __future__ import annotations

from emojiray.cli.common import add_config_args, config_from_args


def register(sub) -> None:
    p = sub.add_parser("extract-codes", help="encode a dataset into VQ code shards (Ray Data actors)")
    p.add_argument("--vqvae", required=True, help="tokenizer URI (e.g. <train out>/vqvae)")
    p.add_argument("--data", required=True, help="dataset URI")
    p.add_argument("--out", required=True, help="code shards URI")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from emojiray.data.codes import extract_codes

    extract_codes(args.vqvae, args.data, args.out, config_from_args(args).ray)
    return 0
