"""`emojiray report`: a static HTML page (index.html + images/) of a pipeline run's results."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("report", help="write a static HTML report of a pipeline run (index.html + images/)")
    p.add_argument("--run", required=True, help="a pipeline output (the --out of `emojiray pipeline`)")
    p.add_argument("--out", help="report folder: index.html and images/ (default: RUN/report)")
    p.add_argument("--tune", help="an `emojiray tune` output for the rate-distortion section (default: RUN/tune if present)")
    p.add_argument("--bench", help="a folder of benchmark JSONs, e.g. results/bench (default: RUN/bench if present)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the path of index.html")
    p.set_defaults(func=run)


def run(args) -> int:
    from emojiray.report import build_report

    log = (lambda *a, **k: None) if args.quiet else print
    index = build_report(args.run, args.out, tune_uri=args.tune, log=log, bench_uri=args.bench)
    print(index)
    return 0
