"""Options shared by subcommands: --preset and --set, turned into one Config; paths made absolute."""

from __future__ import annotations

import argparse

from emojiray import storage
from emojiray.config import Config, available_presets, load_config

# Options that name files and folders (local paths or s3:// URIs). They are made absolute as the
# command line is read, so that Ray workers (which run in another working directory), manifests,
# model metas and reports never hold a path relative to the user's working directory.
PATH_OPTIONS = ("out", "data", "vqvae", "run", "prior", "priors", "vendor_prior", "classifier", "upscaler", "codes",
                "checkpoint", "samples", "real", "uri", "sheet", "tune", "bench")
PATH_SOURCES = ("folder:", "parquet:")  # --source kinds followed by a path


def _absolute(value: str) -> str:
    kind, sep, uri = value.partition("=")  # condition's --samples KIND=URI
    if sep and kind.isidentifier():
        return f"{kind}={_absolute(uri)}"
    return storage.absolute(value) if value else value


def claim_output(args: argparse.Namespace, out: str, record: str, **inputs: str | None) -> None:
    """Before any work: ``out/record`` must not hold the result of other inputs, unless --force."""
    storage.claim_output(out, record, {k: v for k, v in inputs.items() if v}, getattr(args, "force", False))


def extension_paths(args: argparse.Namespace, **models: str | None):
    """An extension command's :class:`~emojiray.extensions.paths.RunPaths`: those of --run, with --vqvae,
    --data, --out and ``models`` (its model options, e.g. ``prior=args.prior``) where given; --out is needed."""
    from emojiray.extensions.paths import RunPaths

    paths = RunPaths.of(args.run, vqvae=args.vqvae, data=args.data, out=args.out, **models)
    paths.need("out")
    return paths


def evaluate_in_task(args: argparse.Namespace, cfg, paths, record: str, evaluate, **models: str | None) -> dict:
    """An extension's ``--evaluate``: claim ``paths.out/record`` for ``paths.data`` and these models, then
    run ``evaluate(paths, cfg, paths.out)`` in one Ray task (a GPU of the cluster when there is one)."""
    from emojiray.raykit import run_task

    claim_output(args, paths.out, record, data=paths.data, **models)
    return run_task(evaluate, paths, cfg, paths.out, ray_cfg=cfg.ray)


def absolute_paths(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with every path option (and a folder:/parquet: --source) made absolute."""
    for name in PATH_OPTIONS:
        value = getattr(args, name, None)
        if isinstance(value, str):
            setattr(args, name, _absolute(value))
        elif isinstance(value, list):
            setattr(args, name, [_absolute(v) for v in value])
    source = getattr(args, "source", None)
    for kind in PATH_SOURCES:
        if isinstance(source, str) and source.startswith(kind) and not storage.is_s3(source[len(kind):]):
            args.source = kind + storage.absolute(source[len(kind):])
    return args


def add_config_args(parser: argparse.ArgumentParser, default_preset: str | None = "smoke") -> None:
    parser.add_argument("--preset", default=default_preset,
                        help=f"preset name ({', '.join(available_presets())}) or a YAML file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set data.size=32 (repeatable)")


def finish_parser(parser: argparse.ArgumentParser, run, force_help: str | None = None) -> None:
    """What every command's options end with: --force where the command has one (``force_help`` says what
    it replaces or redoes), then --preset and --set; ``run(args)`` is what the command does."""
    if force_help is not None:
        parser.add_argument("--force", action="store_true", help=force_help)
    add_config_args(parser)
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace, **flags: object) -> Config:
    """The preset, then --set overrides, then dedicated flags (e.g. --size) that were given."""
    extra = [f"{key}={value}" for key, value in flags.items() if value is not None]
    return load_config(args.preset, [*args.overrides, *extra])


def add_extension_args(parser: argparse.ArgumentParser, run, evaluate_help: str, prior_help: str,
                       prior_dest: str = "prior") -> None:
    """--run, --data, --vqvae, --prior, --seed, --out, --evaluate, --force and the config options of an
    extension; ``run(args)`` is the command."""
    parser.add_argument("--run", default="", help="a pipeline output (finds the data and the models it needs)")
    parser.add_argument("--data", help="dataset URI (emoji names, held-out images)")
    parser.add_argument("--vqvae", help="VQ-VAE URI (default: the run's, or the prior's)")
    parser.add_argument("--prior", dest=prior_dest, help=prior_help)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="output folder (default: RUN/extensions)")
    parser.add_argument("--evaluate", action="store_true", help=evaluate_help)
    finish_parser(parser, run, "--evaluate: replace the measurement of other models or data at --out")
