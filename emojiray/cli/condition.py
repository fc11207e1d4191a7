"""`emojiray condition`: one sheet per condition value of conditional priors, scored by the emoji classifier."""

from __future__ import annotations

from emojiray.cli.common import claim_output, config_from_args, finish_parser
from emojiray.errors import EmojirayError


def register(sub) -> None:
    p = sub.add_parser("condition", help="conditional generation sheets per emotion/category, with classifier "
                                         "agreement, Inception Score and FID per condition")
    p.add_argument("--run", default="", help="a pipeline output (finds data, classifier and the prior)")
    p.add_argument("--prior", dest="priors", action="append", default=[], metavar="URI",
                   help="conditional prior (repeatable; default: the run's prior)")
    p.add_argument("--classifier", help="emoji classifier URI (from `emojiray train-classifier`)")
    p.add_argument("--data", help="dataset URI")
    p.add_argument("--vqvae", help="VQ-VAE URI (default: each prior's)")
    p.add_argument("--samples", action="append", default=[], metavar="KIND=URI",
                   help="an existing `emojiray sample` run to score (repeatable), e.g. maskgit=RUN/samples_maskgit")
    p.add_argument("-n", "--num-samples", type=int, help="samples per condition value (default: extensions.condition_samples)")
    p.add_argument("--out", help="output folder (default: RUN/extensions)")
    finish_parser(p, run, "replace the condition report of other data or another classifier at --out")


def parse_samples(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        kind, sep, uri = item.partition("=")
        if not sep or not kind or not uri:
            raise EmojirayError(f"--samples wants KIND=URI (e.g. maskgit=RUN/samples_maskgit), got {item!r}")
        out[kind] = uri
    return out


def run(args) -> int:
    from emojiray.extensions.paths import RunPaths

    cfg = config_from_args(args, **{"extensions.condition_samples": args.num_samples})
    sample_runs = parse_samples(args.samples)
    paths = RunPaths.of(args.run, data=args.data, classifier=args.classifier, vqvae=args.vqvae, out=args.out,
                        prior=args.priors[0] if args.priors else None)
    paths.need("data", "classifier", "out")
    priors = args.priors or ([paths.prior] if paths.prior else [])
    if not priors:
        raise EmojirayError("no prior: give --prior URI (a conditional prior) or --run (a pipeline output)")
    claim_output(args, paths.out, "condition.json", data=paths.data, classifier=paths.classifier)
    from emojiray.extensions.condition import condition_report
    from emojiray.raykit import run_task

    report = run_task(condition_report, paths, cfg, paths.out, priors=priors,
                      sample_runs=sample_runs, ray_cfg=cfg.ray)
    for name, p in report["priors"].items():
        if p.get("mean_agreement") is not None:
            print(f"{name}: mean classifier agreement {p['mean_agreement']:.3f} over {len(p['values'])} {p['label']} "
                  f"values (real held-out emoji: {p['mean_real_agreement']}, chance {p['chance_agreement']:.3f})")
    print(f"condition sheets and condition.json -> {paths.out}")
    return 0
