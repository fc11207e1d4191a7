"""Checkpoints that cannot run code: safetensors weights + a torch ``weights_only`` trainer state.

A checkpoint directory holds::

    meta.json            {"format": "emojiray-checkpoint", "kind": "vqvae", "config": {...}, "step": ...,
                          "weights_sha256": the SHA-256 of model.safetensors}
    model.safetensors    the model's state dict (tensors only)
    trainer_state.pt     optimizer/scheduler state (loaded with torch.load(weights_only=True); optional)

Loading refuses, with one line, anything else: a missing or foreign meta.json, a file that is not
safetensors, weights that differ from the hash their meta.json records (damaged or changed),
NaN or infinite weights, weights whose names or shapes do not match the model, a pickle that wants
to run code. ``weights_sha256`` is also a model's identity: a prior names the VQ-VAE whose codes it
learned by it (checkpoints of format 1, from before 2026-12-02, carry no hash and load unchecked).
Checkpoints live on local paths or ``s3://`` (copied through :mod:`emojiray.storage`).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import posixpath
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emojiray import storage
from emojiray.errors import EmojirayError

FORMAT = "emojiray-checkpoint"
FORMAT_VERSION = 2  # 2: meta.json records weights_sha256
HASH_KEY = "weights_sha256"
META, WEIGHTS, TRAINER = "meta.json", "model.safetensors", "trainer_state.pt"


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP and torch.compile wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def save(directory: str | os.PathLike, model: nn.Module, kind: str, config: dict[str, Any],
         trainer_state: dict[str, Any] | None = None, **meta: Any) -> Path:
    """Write a checkpoint into a local directory (created if needed)."""
    from safetensors.torch import save as to_bytes

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in unwrap(model).state_dict().items()}
    weights = to_bytes(state)
    (d / WEIGHTS).write_bytes(weights)
    if trainer_state is not None:
        torch.save(trainer_state, d / TRAINER)
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "config": config, **meta,
              HASH_KEY: hashlib.sha256(weights).hexdigest()}
    (d / META).write_text(json.dumps(storage.finite_json(record), indent=2, default=_json_default) + "\n")
    return d


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_meta(directory: str | os.PathLike, kind: str | None = None) -> dict[str, Any]:
    path = Path(directory) / META
    if not path.exists():
        raise EmojirayError(f"{directory} is not an emojiray checkpoint: no {META}")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise EmojirayError(f"{path} is not valid JSON: not an emojiray checkpoint") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise EmojirayError(f"{directory} is not an emojiray checkpoint (foreign {META})")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise EmojirayError(f"{directory}: checkpoint format {meta['format_version']} is newer than this emojiray")
    if kind is not None and meta.get("kind") != kind:
        raise EmojirayError(f"{directory} holds a {meta.get('kind')!r} checkpoint, expected {kind!r}")
    return meta


def weights_hash(meta: dict[str, Any]) -> str | None:
    """The content hash a checkpoint's meta records for its weights (None for format 1)."""
    return meta.get(HASH_KEY)


def load_weights(directory: str | os.PathLike, model: nn.Module, meta: dict[str, Any] | None = None) -> None:
    """Load model.safetensors into ``model``; refuse foreign, damaged, non-finite or mismatched files.
    ``meta``: the checkpoint's meta.json when the caller has read it already."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    path = Path(directory) / WEIGHTS
    if not path.exists():
        raise EmojirayError(f"{directory}: no {WEIGHTS} in the checkpoint")
    meta = meta if meta is not None else read_meta(directory)
    recorded = weights_hash(meta)
    if recorded is None and meta.get("format_version", 1) >= 2:
        raise EmojirayError(f"{directory}/{META} records no {HASH_KEY}: tampered or foreign checkpoint")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EmojirayError(f"cannot read {path}: {exc.strerror or exc}") from None
    if recorded is not None and hashlib.sha256(data).hexdigest() != recorded:
        raise EmojirayError(f"{path} differs from the hash its {META} records: damaged or changed since it was saved")
    try:
        state = load_bytes(data)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise EmojirayError(f"{path} is not a valid safetensors file (tampered or foreign): {str(exc)[:120]}") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise EmojirayError(f"{path} holds NaN or infinite weights ({', '.join(bad[:3])}"
                            f"{f' and {len(bad) - 3} more' if len(bad) > 3 else ''}): not a usable model")
    target = unwrap(model)
    expected = target.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        detail = (f"missing {missing[:3]}" if missing else "") + (f" unexpected {unexpected[:3]}" if unexpected else "") \
            + (f" wrong shapes {wrong[:3]}" if wrong else "")
        raise EmojirayError(f"{path} does not fit this model ({detail.strip()}): wrong config or foreign checkpoint")
    target.load_state_dict(state)


def load_trainer_state(directory: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(directory) / TRAINER
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise EmojirayError(f"{path} refused: not a plain tensor state ({reason})") from None


class LocalCopy:
    """``with LocalCopy(uri) as path:`` a local directory with the checkpoint's files."""

    def __init__(self, uri: str):
        self.uri = str(uri)
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Path:
        if not storage.is_s3(self.uri):
            if not Path(self.uri).is_dir():
                raise EmojirayError(f"checkpoint not found: {self.uri}")
            return Path(self.uri)
        self._tmp = tempfile.TemporaryDirectory(prefix="emojiray-ckpt-")
        files = storage.list_files(self.uri, recursive=False)
        if not files:
            raise EmojirayError(f"checkpoint not found: {self.uri}")
        for f in files:
            (Path(self._tmp.name) / storage.basename(f)).write_bytes(storage.read_bytes(f))
        return Path(self._tmp.name)

    def __exit__(self, *exc) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def export(local_dir: str | os.PathLike, uri: str, files: tuple[str, ...] = (META, WEIGHTS)) -> str:
    """Copy a checkpoint's files from a local directory to ``uri`` (local or S3), atomically each."""
    for name in files:
        src = Path(local_dir) / name
        if src.exists():
            storage.write_bytes(storage.join(uri, name), src.read_bytes())
    return uri


def linked_uri(model_uri: str, linked: str) -> str:
    """A model's reference to another (a prior's ``vqvae``): absolute paths and ``s3://`` URIs as
    they are, a relative path taken from the model's own folder (``../vqvae``: models that travel
    together, like the shipped ones under results/models/)."""
    linked = str(linked)
    if storage.is_s3(linked) or os.path.isabs(linked):
        return linked
    if storage.is_s3(model_uri):
        return "s3://" + posixpath.normpath(posixpath.join(str(model_uri)[len("s3://"):], linked))
    return os.path.normpath(os.path.join(str(model_uri), linked))


def load_vqvae(uri: str, device: str | torch.device = "cpu"):
    """(model in eval mode on ``device``, Config, meta) from a VQ-VAE checkpoint directory."""
    from emojiray.config import config_from_dict
    from emojiray.models import build_vqvae

    with LocalCopy(uri) as d:
        meta = read_meta(d, kind="vqvae")
        cfg = config_from_dict(meta["config"])
        model = build_vqvae(cfg.model)
        load_weights(d, model, meta)
    return model.to(device).eval(), cfg, meta
