"""What the benchmarks share: the tokenizer benchmarks' common options, picking the recipes from
the command line (tokenizer_recipes.py, prior_recipes.py), and appending a row with its provenance
to a JSON-lines file."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shlex
import sys

import torch

from vqvae_speed import _revision


def tokenizer_parser(doc: str, seconds: float) -> argparse.ArgumentParser:
    """--preset, --set KEY=VALUE, --data and --seconds (training time of each run)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--preset", default="smoke")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--data", default="results/bench/data-32")
    ap.add_argument("--seconds", type=float, default=seconds, help="training time of each run")
    return ap


def chosen(ap, args, recipes: dict[str, list[str]]) -> dict[str, list[str]]:
    """{name: overrides} of ``--recipe NAME ...`` and of ``--name NAME --set KEY=VALUE ...``."""
    out = {r: recipes[r] for r in args.recipe}
    if args.name:
        out[args.name] = list(args.overrides)
    if not out:
        ap.error("give --recipe NAME or --name NAME --set KEY=VALUE ...")
    return out


def provenance() -> dict[str, str]:
    """The device, date, git revision and command every row carries."""
    return {"device": f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)",
            "date": dt.date.today().isoformat(), "git_revision": _revision(),
            "command": "python " + " ".join(shlex.quote(a) for a in sys.argv)}


def append(path: str, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def read(path: str) -> list[dict]:
    """The rows of a JSON-lines file written by :func:`append`."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_markdown(path: str, intro: list[str], columns: list[str], cells: list[list[str]]) -> None:
    """``intro`` lines, then a Markdown table of ``columns`` with one row of ``cells`` per entry."""
    lines = [*intro, "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
