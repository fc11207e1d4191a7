"""`emojiray train-classifier`: an emoji classifier (emotion, category, vendor) for the `condition` metrics."""

from __future__ import annotations

from emojiray.cli.common import add_config_args, config_from_args
from emojiray.errors import EmojirayError


def register(sub) -> None:
    p = sub.add_parser("train-classifier",
                       help="train the emoji classifier (one head per label) used for agreement and Inception Score")
    p.add_argument("--data", help="dataset URI (from `emojiray data`)")
    p.add_argument("--out", help="checkpoint folder (writes meta.json, weights and classifier.json)")
    p.add_argument("--epochs", type=int, help="training epochs (default: classifier.epochs)")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from emojiray.extensions.classifier import train_classifier
    from emojiray.raykit import run_task

    if not args.data or not args.out:
        raise EmojirayError("give --data DATA (a dataset from `emojiray data`) and --out URI")
    cfg = config_from_args(args, **{"classifier.epochs": args.epochs})
    report = run_task(train_classifier, args.data, args.out, cfg, ray_cfg=cfg.ray)
    acc = ", ".join(f"{k} {v['accuracy']:.3f}" for k, v in report["test"].items() if v.get("accuracy") is not None)
    print(f"classifier -> {args.out} (held-out accuracy: {acc})")
    return 0
