"""`emojiray pipeline`: the main job end to end (what `make run` and jobs/pipeline.py run)."""

from __future__ import annotations

from emojiray.cli.common import config_from_args, finish_parser


def register(sub) -> None:
    p = sub.add_parser("pipeline", help="run the whole pipeline: data -> ... -> results")
    p.add_argument("--out", default="results/smoke", help="run URI (local path or s3://bucket/prefix)")
    p.add_argument("--force", action="store_true", help="redo stages that are up to date")
    p.add_argument("--from", dest="start", metavar="STAGE",
                   help="redo this stage and every later one (prepare, info, stream, train_vqvae, eval_vqvae, "
                        "extract_codes, prior_<kind>, samples_<kind>, extensions)")
    finish_parser(p, run)


def run(args) -> int:
    from emojiray.pipeline import run_pipeline

    run_pipeline(config_from_args(args), args.out, force=args.force, start=args.start)
    return 0
