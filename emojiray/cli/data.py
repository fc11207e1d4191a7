"""`emojiray data prepare` and `emojiray data info`."""

from __future__ import annotations

import json

from emojiray import storage
from emojiray.cli.common import config_from_args, finish_parser


def register(sub) -> None:
    p = sub.add_parser("data", help="prepare and inspect emoji datasets")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    prep = dsub.add_parser("prepare", help="source -> preprocessed, split Parquet shards + manifest")
    prep.add_argument("--source", help="npm:google,twitter (default) | hf:NAME | folder:PATH | parquet:URI")
    prep.add_argument("--size", type=int, help="output side in pixels (e.g. 32 or 64)")
    prep.add_argument("--background", help="colour for transparent pixels (default white)")
    prep.add_argument("--out", required=True, help="dataset URI (local path or s3://bucket/prefix)")
    finish_parser(prep, run_prepare, "rebuild even if the dataset is up to date")

    info = dsub.add_parser("info", help="print a dataset summary and write a contact sheet PNG")
    info.add_argument("uri", help="dataset URI")
    info.add_argument("--by", default="category", choices=("category", "emotion", "vendor", "subcategory"),
                      help="one contact-sheet row per value of this label")
    info.add_argument("--sheet", help="contact sheet PNG URI (default: results/data_contact_<by>.png)")
    info.add_argument("--per-row", type=int, default=16, help="images per row")
    info.add_argument("--verify", action="store_true", help="check every shard's SHA-256")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(func=run_info)


def run_prepare(args) -> int:
    from emojiray.data.prepare import prepare

    cfg = config_from_args(args, **{"data.source": args.source, "data.size": args.size,
                                    "data.background": args.background})
    prepare(cfg.data, args.out, force=args.force)
    return 0


def run_info(args) -> int:
    from emojiray import storage
    from emojiray.data import shards
    from emojiray.data.info import contact_sheet, format_summary, summary
    from emojiray.errors import EmojirayError

    manifest = shards.load_manifest(args.uri, verify_shards=False)  # --verify lists every problem
    s = summary(args.uri, manifest)
    print(json.dumps(storage.finite_json(s), indent=2) if args.json else format_summary(s))
    if args.verify:
        problems = shards.verify(args.uri, manifest)
        if problems:
            raise EmojirayError(f"{len(problems)} shard problem(s): {'; '.join(problems[:3])}")
        print(f"verified  {len(manifest['shards'])} shards match their SHA-256")
    sheet = args.sheet or f"results/data_contact_{args.by}.png"
    storage.write_bytes(sheet, contact_sheet(args.uri, args.by, args.per_row, manifest))
    print(f"sheet     {sheet}")
    return 0
