"""`emojiray config`: print the resolved configuration (preset + overrides) as YAML, or the range
every value must lie in (`--ranges`)."""

from __future__ import annotations

from emojiray.cli.common import config_from_args, finish_parser


def register(sub) -> None:
    p = sub.add_parser("config", help="print the configuration a preset and --set overrides give")
    p.add_argument("--ranges", action="store_true", help="print each key's allowed range instead")
    finish_parser(p, run)


def run(args) -> int:
    from emojiray.config import dump_yaml, range_text, sections

    cfg = config_from_args(args)
    if not args.ranges:
        print(dump_yaml(cfg), end="")
        return 0
    for name, values in sections(cfg):
        for key, spec in type(values).RANGES.items():
            item = " (each item)" if isinstance(getattr(values, key), (list, tuple)) else ""
            print(f"{name}.{key}: {range_text(spec)}{item}")
    return 0
