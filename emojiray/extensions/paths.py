"""Where a pipeline run keeps the models and data the extensions use.

A pipeline run (`emojiray pipeline --out RUN`) keeps everything an extension needs::

    RUN/data/                               the dataset (names, labels, held-out splits)
    RUN/tokenizer/vqvae/                    the VQ-VAE
    RUN/prior_maskgit/prior/                the MaskGIT prior (conditioned on prior.condition)
    RUN/extensions/classifier/              the emoji classifier (`condition`)
    RUN/extensions/upscaler/                the low-resolution encoder (`upscale`)
    RUN/extensions/prior_maskgit_vendor/prior/     MaskGIT conditioned on the vendor (`restyle`)
    RUN/extensions/prior_maskgit_<label>/prior/    more conditional MaskGIT priors (extensions.extra_conditions)

so every extension command takes ``--run RUN`` and finds its inputs; ``--data``, ``--vqvae``,
``--prior`` … override single paths.
"""

from __future__ import annotations

from dataclasses import dataclass

from emojiray import storage
from emojiray.errors import EmojirayError

EXT = "extensions"


@dataclass
class RunPaths:
    """Where a pipeline run keeps the models and data the extensions use."""

    run: str = ""
    data: str = ""
    vqvae: str = ""
    prior: str = ""
    classifier: str = ""
    upscaler: str = ""
    vendor_prior: str = ""
    out: str = ""  # where extension outputs go

    @classmethod
    def of(cls, run: str = "", **overrides: str | None) -> "RunPaths":
        """Paths under ``run`` (a pipeline's --out), each replaced by a given override."""
        base = cls(run=run)
        if run:
            base = cls(run=run, data=storage.join(run, "data"), vqvae=storage.join(run, "tokenizer", "vqvae"),
                       prior=storage.join(run, "prior_maskgit", "prior"),
                       classifier=storage.join(run, EXT, "classifier"),
                       upscaler=storage.join(run, EXT, "upscaler"),
                       vendor_prior=storage.join(run, EXT, "prior_maskgit_vendor", "prior"),
                       out=storage.join(run, EXT))
        for k, v in overrides.items():
            if v:
                setattr(base, k, v)
        return base

    def need(self, *names: str) -> None:
        """One-line error naming the first missing path (a flag, or a run that lacks it)."""
        for name in names:
            value = getattr(self, name)
            flag = "--" + name.replace("_", "-")
            if not value:
                raise EmojirayError(f"no {name.replace('_', ' ')}: give {flag} or --run (a pipeline output)")
            marker = value if name == "out" else storage.join(value, "manifest.json" if name == "data" else "meta.json")
            if name != "out" and not storage.exists(marker):
                hint = f" (run `emojiray pipeline --out {self.run}` first)" if self.run else ""
                raise EmojirayError(f"no {name.replace('_', ' ')} at {value}{hint}")


def require_model(uri: str, what: str, command: str, option: str) -> None:
    """One-line errors for a helper model (classifier, upscaler) that is not given or not there."""
    if not uri:
        raise EmojirayError(f"no {what}: give {option} (from `emojiray {command}`) or --run")
    if not storage.exists(storage.join(uri, "meta.json")):
        raise EmojirayError(f"no {what} at {uri}: train one with `emojiray {command} --out {uri}`")
