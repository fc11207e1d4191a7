"""`emojiray train-prior`: train a PixelSNAIL, autoregressive transformer or MaskGIT prior."""

from __future__ import annotations

from emojiray.cli.common import config_from_args, finish_parser
from emojiray.config import CONDITIONS
from emojiray.registry import PRIORS


def register(sub) -> None:
    p = sub.add_parser("train-prior", help="train a prior over VQ codes with Ray Train")
    p.add_argument("--codes", required=True, help="code shards URI (from `emojiray extract-codes`)")
    p.add_argument("--kind", choices=PRIORS.names(), help="default: prior.kind")
    p.add_argument("--condition", choices=CONDITIONS, help="default: prior.condition")
    p.add_argument("--out", required=True, help="run URI for checkpoints, logs, the model and a sample sheet")
    p.add_argument("--resume", action="store_true", help="continue the run at --out")
    finish_parser(p, run, "delete an existing run at --out and start over")


def run(args) -> int:
    from emojiray import storage
    from emojiray.generate.sampler import write_sample_sheet
    from emojiray.train.prior_loop import sheet_name, train_prior

    cfg = config_from_args(args, **{"prior.kind": args.kind, "prior.condition": args.condition})
    record = train_prior(cfg, args.codes, args.out, resume=args.resume, force=args.force)
    sheet = write_sample_sheet(record["prior"], None, storage.join(args.out, sheet_name(cfg.prior.kind)),
                               n=cfg.prior.sheet_samples)
    print(f"train-prior: sample sheet -> {sheet}")
    return 0
