"""The report's figures, drawn with matplotlib on the Agg backend and returned as PNG bytes."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from emojiray.report.baselines import TARGETS

Series = dict[str, list[tuple[float, float]]]


@dataclass
class Line:
    """One curve: the first of ``keys`` found in the series is drawn, labelled ``label``."""

    label: str
    keys: Sequence[str]


@dataclass
class Panel:
    title: str
    lines: Sequence[Line]
    logy: bool = False
    hline: float | None = None  # a target, drawn dashed
    hline_label: str = ""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _finite(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(x, y) for x, y in points if y is not None and math.isfinite(y)]


def curves(panels: Sequence[Panel], series: Series, xlabel: str = "step", title: str = "",
           used: set[str] | None = None) -> bytes | None:
    """A grid of small line plots, one per panel that has data; None when no panel has any.
    ``used`` (if given) receives the series keys that were drawn."""
    drawn = []
    for panel in panels:
        lines = []
        for line in panel.lines:
            for key in line.keys:
                pts = _finite(series.get(key, []))
                if pts:
                    lines.append((line.label, pts))
                    if used is not None:
                        used.add(key)
                    break
        if lines:
            drawn.append((panel, lines))
    if not drawn:
        return None
    plt = _pyplot()
    cols = min(3, len(drawn))
    rows = math.ceil(len(drawn) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat[len(drawn):]:
        ax.set_visible(False)
    for ax, (panel, lines) in zip(axes.flat, drawn):
        for label, pts in lines:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o" if len(pts) <= 12 else None, markersize=3, linewidth=1.3, label=label)
        if panel.hline is not None:
            ax.axhline(panel.hline, color="grey", linestyle="--", linewidth=1, label=panel.hline_label or None)
        if panel.logy and all(y > 0 for _, pts in lines for _, y in pts):
            ax.set_yscale("log")
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if len(lines) > 1 or panel.hline is not None:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)


def codebook_usage(levels: dict[str, dict[str, Any]], reference: dict[str, Any] | None = None) -> bytes | None:
    """Per level: the share of the codebook used and the perplexity as a share of K, with the
    target share and the reference's usage."""
    names = [n for n, lv in levels.items() if lv.get("codebook_size")]
    if not names:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.9 * len(names) + 3.2, 3.2))
    width = 0.35
    xs = range(len(names))
    used = [100 * (levels[n].get("codes_used") or 0) / levels[n]["codebook_size"] for n in names]
    perp = [100 * (levels[n].get("perplexity") or 0) / levels[n]["codebook_size"] for n in names]
    b1 = ax.bar([x - width / 2 for x in xs], used, width, label="codes used")
    b2 = ax.bar([x + width / 2 for x in xs], perp, width, label="perplexity")
    for bars, values, raw in ((b1, used, [levels[n].get("codes_used") for n in names]),
                              (b2, perp, [levels[n].get("perplexity") for n in names])):
        for bar, v, r in zip(bars, values, raw):
            text = f"{r:.0f}" if isinstance(r, (int, float)) else ""
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=8)
    if reference:
        ref_sizes = reference.get("codebook_size", {})
        for x, n in zip(xs, names):
            ref_used, ref_k = reference.get("codes_used", {}).get(n), ref_sizes.get(n)
            if ref_used is not None and ref_k:
                ax.plot([x - 0.45, x + 0.45], [100 * ref_used / ref_k] * 2, color="black", linestyle=":",
                        linewidth=1.5, label="reference used" if x == 0 else None)
    ax.axhline(100 * TARGETS["codes_used_share"], color="grey", linestyle="--", linewidth=1, label="target")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([f"{n} (K={levels[n]['codebook_size']})" for n in names], fontsize=9)
    ax.set_ylabel("% of the codebook", fontsize=9)
    ax.set_ylim(0, 112)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title("codebook usage per level (held-out)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def rate_distortion(trials: Sequence[dict[str, Any]], run_point: dict[str, Any] | None) -> bytes | None:
    """Rate (entropy-coded bits per image, else fixed bits) against PSNR: the sweep's trials (front
    marked) and this run's tokenizer. None when there is not a single point."""

    def num(v):
        try:
            f = float(v)
        except (TypeError, ValueError):
            return None
        return f if math.isfinite(f) else None

    pts, front = [], []
    for t in trials:  # validation PSNR, as the sweep's own front is defined on it
        rate = num(t.get("entropy_bits_per_image")) or num(t.get("bits_per_image"))
        psnr = num(t.get("val_psnr")) or num(t.get("heldout_psnr"))
        if rate is None or psnr is None or str(t.get("status", "")).upper() == "ERROR":
            continue
        (front if str(t.get("on_front", "")).lower() in ("yes", "true", "1") else pts).append((rate, psnr))
    run_xy = None
    if run_point:
        rate = num(run_point.get("entropy_bits")) or num(run_point.get("bits"))
        psnr = num(run_point.get("psnr"))
        if rate is not None and psnr is not None:
            run_xy = (rate, psnr)
    if not pts and not front and run_xy is None:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 3.8))
    if pts:
        ax.scatter(*zip(*pts), s=22, color="tab:blue", alpha=0.6, label="sweep trials (validation)")
    if front:
        front.sort()
        ax.plot(*zip(*front), color="tab:red", marker="o", markersize=5, linewidth=1.2, drawstyle="steps-post",
                label="sweep's Pareto front (validation)")
    if run_xy is not None:
        ax.scatter([run_xy[0]], [run_xy[1]], s=110, marker="*", color="tab:green", zorder=5,
                   label="this run's tokenizer (held-out)")
    ax.axhline(TARGETS["psnr"], color="grey", linestyle="--", linewidth=1, label=f"target PSNR {TARGETS['psnr']:g} dB")
    ax.set_xlabel("rate: entropy-coded bits per image", fontsize=9)
    ax.set_ylabel("PSNR (dB)", fontsize=9)
    ax.set_title("rate–distortion", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _png(fig)


def bars(title: str, values: dict[str, float], ylabel: str = "", logy: bool = False) -> bytes | None:
    """A plain bar chart of named values (e.g. images per category)."""
    values = {k: v for k, v in values.items() if isinstance(v, (int, float))}
    if not values:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(values) + 1.5), 3.0))
    ax.bar(range(len(values)), list(values.values()), color="tab:blue")
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(list(values), rotation=40, ha="right", fontsize=8)
    if logy and all(v > 0 for v in values.values()):
        ax.set_yscale("log")
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)
