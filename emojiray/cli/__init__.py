"""The `emojiray` command: one small module per subcommand, registered here.

A subcommand module defines ``register(subparsers)``, which adds its parser and sets
``func=run`` on it; ``run(args)`` builds a config, calls one library function and prints.
User errors (:class:`EmojirayError`) print one line and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from emojiray import __version__
from emojiray.errors import EmojirayError

# Subcommand modules, in help order. Adding a command = adding a module and its name here.
COMMANDS = ("data", "train_vqvae", "eval_vqvae", "extract_codes", "train_prior", "sample", "eval_samples",
            "interpolate", "train_classifier", "condition", "restyle", "train_upscaler", "upscale", "inpaint",
            "tune", "pipeline", "report", "config")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="emojiray", description="VQ-VAE emoji generation on Ray.")
    parser.add_argument("--version", action="version", version=f"emojiray {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"emojiray.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from emojiray.cli.common import absolute_paths

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(absolute_paths(args)) or 0)
    except EmojirayError as exc:
        print(f"emojiray: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("emojiray: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`emojiray config | head`): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
