"""Training the helper models (classifier, upscaler) through the one Ray driver, and publishing them."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from emojiray import storage
from emojiray.errors import EmojirayError
from emojiray.extensions.measures import json_safe
from emojiray.train import harness


RUN_DIR = "train"  # in a helper model's folder: its Ray Train run (ray/, tensorboard/, the exported model)


class HelperFamily:
    """What the helper models' :mod:`~emojiray.train.harness` families share: the model (built by
    :meth:`build` from the family's config ``section``) on the device, trained as it is (``net``), AdamW
    and the schedule of the section's optimiser (``classifier.optim``, ``upscale.optim``: a warm-up over a
    tenth of the steps, at most 100, cosine decay to 5 % of the learning rate, clipping at 1), its time
    budget and a validation every epoch, and no random stream of their own unless a family sets
    ``generator``."""

    section = ""  # the family's config section: "classifier", "upscale"

    def __init__(self, cfg, spec: dict[str, Any], device: torch.device | str = "cpu", world: int = 1, rank: int = 0):
        sc = getattr(cfg, self.section)
        self.cfg, self.spec, self.device = cfg, spec, torch.device(device)
        self.model = self.build(sc, spec).to(self.device)
        self.net = self.model
        self.opt = harness.optimiser(self.model, sc.optim)
        self.steps_per_epoch = max(1, spec["examples"] // (sc.batch_size * world))
        self.schedule = harness.schedule(sc.optim, epochs=sc.epochs, batch_size=sc.batch_size,
                                         steps_per_epoch=self.steps_per_epoch, max_seconds=sc.max_seconds,
                                         report_every_s=0, log_every=cfg.train.log_every)
        self.generator = None

    def build(self, section, spec: dict[str, Any]):
        """The model to train, from the config section and the spec."""
        raise NotImplementedError


def check_helper_data(what: str, section, train: int, val: int, data_uri: str) -> None:
    """One-line errors before a helper model's training starts Ray."""
    if section.epochs < 1:
        raise EmojirayError(f"{what}.epochs must be >= 1, got {section.epochs}")
    if train == 0:
        raise EmojirayError(f"the dataset at {data_uri} has no training images")
    if val == 0:
        raise EmojirayError(f"the val split of {data_uri} is empty ({what} selection needs it): set "
                            f"data.val_fraction > 0 and prepare again")


def fit_helper(family_cls, cfg, spec: dict[str, Any], train: dict[str, np.ndarray], val: dict[str, np.ndarray],
               out: str, describe: str = "", log=print) -> dict[str, Any]:
    """Train a helper model's family through the one Ray driver (:func:`emojiray.train.driver.fit`)
    on in-memory arrays (put in Ray's object store once); return the driver's record.

    The run lives in ``<out>/train``: ``ray/<kind>/`` (Ray Train's checkpoints), ``tensorboard/``
    and ``<kind>/`` (the best checkpoint by the family's score); :func:`publish_model` then puts
    that model at ``out`` itself. Every call starts the run over (the pipeline keeps a model whose
    inputs did not change instead)."""
    from emojiray.data.stream import from_arrays
    from emojiray.train.driver import fit

    return fit(family_cls, cfg, spec, lambda: {"train": from_arrays(train), "val": from_arrays(val)},
               storage.join(out, RUN_DIR), force=True, quiet_claim=True, describe=describe, log=log)


def publish_model(model_uri: str, out: str, kind: str, **extra: Any) -> dict[str, Any]:
    """Copy the checkpoint at ``model_uri`` (meta.json + weights) to ``out`` with ``extra`` added to
    its meta; return that meta. Each file is written atomically, the weights first: meta.json,
    which makes ``out`` a model, comes last."""
    from emojiray.models import checkpoint as ckpt

    with ckpt.LocalCopy(model_uri) as d:
        meta = {**ckpt.read_meta(d, kind=kind), **json_safe(extra)}
        weights = (d / ckpt.WEIGHTS).read_bytes()
    storage.write_bytes(storage.join(out, ckpt.WEIGHTS), weights)
    storage.write_json(storage.join(out, ckpt.META), meta)
    return meta


def load_helper(uri: str, kind: str, command: str, option: str, build: Callable, device=None):
    """(model in eval mode on ``device``, checkpoint meta) of the helper model of ``kind`` at ``uri``;
    ``build(meta, config)`` makes the module the weights go into. One-line errors name ``command``
    (that trains one) and ``option`` (that passes one)."""
    from emojiray.config import config_from_dict
    from emojiray.devices import resolve_device
    from emojiray.extensions.paths import require_model
    from emojiray.models import checkpoint as ckpt

    require_model(uri, kind, command, option)
    with ckpt.LocalCopy(uri) as d:
        meta = ckpt.read_meta(d, kind=kind)
        model = build(meta, config_from_dict(meta["config"]))
        ckpt.load_weights(d, model)
    return model.to(resolve_device(device)).eval(), meta
