"""`emojiray config`: print the resolved configuration (preset + overrides) as YAML."""

from __future__ import annotations

from emojiray.cli.common import add_config_args, config_from_args


def register(sub) -> None:
    p = sub.add_parser("config", help="print the configuration a preset and --set overrides give")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from emojiray.config import dump_yaml

    print(dump_yaml(config_from_args(args)), end="")
    return 0
