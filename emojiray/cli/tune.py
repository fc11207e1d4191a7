"""`emojiray tune`: a rate-distortion sweep of the tokenizer (Ray Tune + Optuna + ASHA)."""

from __future__ import annotations

from emojiray.cli.common import config_from_args, finish_parser


def register(sub) -> None:
    p = sub.add_parser("tune", help="search codebook size, commitment weight, ... as a rate-distortion sweep")
    p.add_argument("--trials", type=int, help="number of trials (default: tune.trials)")
    p.add_argument("--out", required=True, help="sweep URI: Ray Tune state, trials, table, plots, presets")
    p.add_argument("--data", help="dataset URI (default: the preset's data, prepared under <out>/data)")
    finish_parser(p, run, "start over instead of resuming a sweep at --out")


def run(args) -> int:
    from emojiray import storage
    from emojiray.sweep.sweep import run_sweep

    cfg = config_from_args(args, **{"tune.trials": args.trials})
    data = args.data
    if not data:
        from emojiray.data.prepare import prepare

        data = storage.join(args.out, "data")
        prepare(cfg.data, data)
    summary = run_sweep(cfg, data, args.out, force=args.force)
    return 0 if summary["complete"] else 130
