"""`emojiray train-classifier`: an emoji classifier (emotion, category, vendor) for the `condition` metrics,
trained with Ray Train through the one driver (:mod:`emojiray.train.driver`)."""

from __future__ import annotations

from emojiray.cli.common import config_from_args, finish_parser
from emojiray.errors import EmojirayError


def register(sub) -> None:
    p = sub.add_parser("train-classifier",
                       help="train the emoji classifier (one head per label) used for agreement and Inception Score")
    p.add_argument("--data", help="dataset URI (from `emojiray data`)")
    p.add_argument("--out", help="model folder (writes meta.json, weights, classifier.json and the Ray Train run in train/)")
    p.add_argument("--epochs", type=int, help="training epochs (default: classifier.epochs)")
    finish_parser(p, run, "replace a classifier of another dataset at --out")


def run(args) -> int:
    from emojiray.extensions.classifier import train_classifier

    if not args.data or not args.out:
        raise EmojirayError("give --data DATA (a dataset from `emojiray data`) and --out URI")
    cfg = config_from_args(args, **{"classifier.epochs": args.epochs})
    report = train_classifier(args.data, args.out, cfg, force=args.force)  # Ray Train through the one driver
    acc = ", ".join(f"{k} {v['accuracy']:.3f}" for k, v in report["test"].items() if v.get("accuracy") is not None)
    print(f"classifier -> {args.out} (held-out accuracy: {acc})")
    return 0
