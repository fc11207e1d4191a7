"""What an extension is to the pipeline: one :class:`Extension` per file, registered by name in
:data:`emojiray.registry.EXTENSIONS`.

The pipeline's extension stage (:mod:`emojiray.extensions.stage`) trains the models the listed
extensions need, then for each runs ``evaluate`` (in one Ray task: the measurement on held-out
data, which writes ``<name>.json`` and its sheets under ``run.out``), keeps the ``headline`` keys of
that record in pipeline.json, and calls ``demo`` on ``extensions.demo``. Each extension's own CLI
command calls its module's functions directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emojiray.config import Config
from emojiray.extensions.paths import RunPaths

# The models an extension may need, trained (or checked) by the extension stage before it runs:
NEEDS = (
    "mask_prior",  # a pipeline prior that fills masked codes (MaskGIT)
    "vendor_prior",  # a MaskGIT conditioned on the vendor (extensions/prior_maskgit_vendor)
    "label_priors",  # priors conditioned on a label: prior.condition and extensions.extra_conditions
    "classifier",  # the emoji classifier (extensions/classifier)
    "upscaler",  # the low-res encoder (extensions/upscaler)
)


@dataclass
class ExtensionRun:
    """What an extension gets in a pipeline run: the models, the settings, its output folder."""

    paths: RunPaths
    cfg: Config
    out: str  # RUN/extensions
    label_priors: list[str] = field(default_factory=list)  # URIs of the label-conditioned priors
    sample_runs: dict[str, str] = field(default_factory=dict)  # the pipeline's sample folders by prior kind


@dataclass(frozen=True)
class Extension:
    evaluate: Callable[[ExtensionRun], dict[str, Any]]  # the measurement: returns its record
    demo: Callable[[ExtensionRun, list[str], Callable], Any] | None = None  # (run, demo emoji names, log)
    needs: tuple[str, ...] = ()  # names from NEEDS
    headline: tuple[str, ...] = ("summary",)  # keys of the record that pipeline.json keeps

    def __post_init__(self):
        unknown = set(self.needs) - set(NEEDS)
        if unknown:
            raise ValueError(f"unknown needs {sorted(unknown)}: choose from {', '.join(NEEDS)}")

    def headline_of(self, record: dict[str, Any]) -> dict[str, Any]:
        """The numbers pipeline.json keeps of a record: its ``summary`` block if the extension keeps
        one, else its headline keys."""
        if "summary" in self.headline and isinstance(record.get("summary"), dict):
            return record["summary"]
        return {k: record[k] for k in self.headline if k in record}
