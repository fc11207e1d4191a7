"""The report of an `emojiray tune` sweep: from one dict per trial to a decision.

A sweep is a rate–distortion study: each trial trains a VQ-VAE with other hyperparameters and
reports its rate (fixed ``bits_per_image`` = sum over levels of h*w*log2 K, and the entropy-coded
``entropy_bits_per_image`` from measured code frequencies) and its quality (PSNR, SSIM, rFID).
:func:`write_report` writes, under ``out`` (a local path or ``s3://`` URI):

- ``trials.csv`` and ``trials.md``: one row per trial, Pareto-front rows marked (★ in Markdown),
  then a recommendation per rate budget;
- ``pareto.png``: entropy-coded rate against validation PSNR, with the Pareto front;
- ``importance.png`` and ``parallel_coordinates.png``: Optuna's views of which hyperparameters
  matter for PSNR (skipped, with the reason in the summary, when they cannot be computed);
- ``presets/best_<budget>bits.yaml``: the best configuration under each budget, loadable with
  ``emojiray ... --preset <file>``;
- ``sweep_summary.json``: the front, the best trial per budget and the counts by status.

Failed trials (status ``ERROR``) are listed but never on the front nor recommended, whatever
metrics they reported before failing. Pure core: no Ray here.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import numbers
import warnings
from collections import Counter
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from emojiray import storage
from emojiray.config import Config, config_from_dict, dump_yaml
from emojiray.errors import EmojirayError
from emojiray.sweep.space import apply_params as set_params

RATE_KEY = "entropy_bits_per_image"  # the rate of the Pareto front (what the codes would cost stored)
FIXED_RATE_KEY = "bits_per_image"  # the rate of the budgets (what a prior has to model)
METRICS = ("bits_per_image", "entropy_bits_per_image", "val_psnr", "val_ssim", "heldout_psnr", "heldout_ssim", "rfid")
QUALITY_KEYS = ("heldout_psnr", "val_psnr")  # a trial's quality: the first of these it has
BUDGET_PERCENTILES = (25, 50, 100)  # default budgets: these percentiles of the finished fixed rates
FRONT_MARK = "★"


# --- configurations ---------------------------------------------------------------------------


def apply_params(cfg: Config, params: dict[str, Any]) -> Config:
    """A copy of ``cfg`` with each dotted key of ``params`` set (``cfg`` itself is left unchanged).

    A scalar sampled for a per-level list field (``model.codebook_size``, ``model.code_dim``)
    applies to every level: ``[value] * levels``. Values are converted to the field's type.
    """
    return set_params(config_from_dict(cfg.to_dict()), params)


# --- selection --------------------------------------------------------------------------------


def _num(row: dict[str, Any], key: str) -> float | None:
    """A metric as a float; None when missing, None or not finite (NaN from a diverged run)."""
    value = row.get(key)
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def _quality(row: dict[str, Any], keys: Sequence[str] = QUALITY_KEYS) -> tuple[float, str] | None:
    """The row's quality and the metric it comes from: the first of ``keys`` it has."""
    for key in keys:
        value = _num(row, key)
        if value is not None:
            return value, key
    return None


def _usable(row: dict[str, Any]) -> bool:
    return row.get("status") != "ERROR"


def _finished(row: dict[str, Any]) -> bool:
    """A trial that can be plotted: not failed, with an entropy-coded rate and a validation PSNR."""
    return _usable(row) and _num(row, RATE_KEY) is not None and _num(row, "val_psnr") is not None


def pareto_front(rows: Sequence[dict[str, Any]], rate_key: str = RATE_KEY, quality_key: str = "val_psnr") -> list[int]:
    """Indices of the rows on the rate–quality Pareto front (low rate, high quality), by rate.

    Rows without both values, and failed rows, are left out. A row is dominated when another has
    rate <= and quality >= with at least one strict; equal points are all kept.
    """
    points = {
        i: (_num(row, rate_key), _num(row, quality_key))
        for i, row in enumerate(rows)
        if _usable(row) and _num(row, rate_key) is not None and _num(row, quality_key) is not None
    }

    def dominated(p: tuple) -> bool:
        return any(q[0] <= p[0] and q[1] >= p[1] and q != p for q in points.values())

    front = [i for i, p in points.items() if not dominated(p)]
    return sorted(front, key=lambda i: (points[i][0], -points[i][1], i))


def default_budgets(rows: Sequence[dict[str, Any]], rate_key: str = FIXED_RATE_KEY) -> list[int]:
    """Budgets when none are given: the 25th, 50th and 100th percentiles of the fixed rates of the
    finished rows (non-failed, with a rate and a quality), rounded up to integers, without repeats.

    Every such budget admits at least the cheapest trial; the last admits them all.
    """
    rates = [_num(r, rate_key) for r in rows if _usable(r) and _quality(r) is not None]
    rates = [r for r in rates if r is not None]
    if not rates:
        return []
    return sorted({math.ceil(p) for p in np.percentile(rates, BUDGET_PERCENTILES)})


def best_per_budget(
    rows: Sequence[dict[str, Any]],
    budgets: Iterable[float] | None = None,
    rate_key: str = FIXED_RATE_KEY,
    quality_keys: Sequence[str] = QUALITY_KEYS,
) -> dict[float, dict[str, Any] | None]:
    """For each budget (bits per image, ascending), the best row with rate <= budget, or None.

    A row's quality is its first metric of ``quality_keys`` that is not None: the held-out PSNR,
    else the last validation PSNR (early-stopped trials have no held-out evaluation). Within a
    budget, trials measured on the held-out split are preferred to ones with only a validation
    score, so the two measurements are never compared. Failed rows are never chosen; ties go to
    the lower rate. No budgets (None or empty): :func:`default_budgets`.
    """
    budgets = list(budgets or []) or default_budgets(rows, rate_key)
    candidates = []  # (rate, quality, row)
    for row in rows:
        rate, quality = _num(row, rate_key), _quality(row, quality_keys)
        if _usable(row) and rate is not None and quality is not None:
            candidates.append((rate, quality[0], row))
    best: dict[float, dict[str, Any] | None] = {}
    for budget in sorted(set(budgets)):
        fits = [c for c in candidates if c[0] <= budget]
        fits = [c for c in fits if _num(c[2], quality_keys[0]) is not None] or fits
        best[budget] = max(fits, key=lambda c: (c[1], -c[0]))[2] if fits else None
    return best


# --- tables -----------------------------------------------------------------------------------


def _unique(items: Iterable[str]) -> list[str]:
    """Items without repeats, in first-seen order."""
    return list(dict.fromkeys(items))


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    params = _unique(k for r in rows for k in r.get("params") or {})
    levels = _unique(k for r in rows for k in r.get("codes_used") or {})
    return ["trial_id", "status", *params, "epochs", *METRICS, *(f"codes_used_{lvl}" for lvl in levels),
            "on_front", "error"]


def _record(row: dict[str, Any], on_front: bool) -> dict[str, Any]:
    """The row flattened to table columns (missing ones are simply absent)."""
    record = {"trial_id": row.get("trial_id"), "status": row.get("status"), **(row.get("params") or {}),
              "epochs": row.get("epochs")}
    record.update({key: row.get(key) for key in METRICS})
    record.update({f"codes_used_{lvl}": n for lvl, n in (row.get("codes_used") or {}).items()})
    record.update(on_front="yes" if on_front else "no", error=row.get("error"))
    return record


def _csv(columns: list[str], records: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow(["" if record.get(c) is None else record[c] for c in columns])
    return buf.getvalue()


def _fmt(value: Any) -> str:
    """A Markdown cell: large numbers with one decimal, small ones with 4 significant digits."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown_table(columns: list[str], records: list[dict[str, Any]]) -> str:
    def cell(column: str, value: Any) -> str:
        return (FRONT_MARK if value == "yes" else "") if column == "on_front" else _fmt(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(c, r.get(c)) for c in columns) + " |" for r in records]
    return "\n".join(lines)


def _by_rate(row: dict[str, Any]) -> tuple:
    rate = _num(row, RATE_KEY)
    return rate is None, rate or 0.0, str(row.get("trial_id"))


# --- recommendation ---------------------------------------------------------------------------


def _levels(values: list[int]) -> str:
    """``512`` when every level has it, else ``512/256`` (bottom/top)."""
    return str(values[0]) if len(set(values)) == 1 else "/".join(map(str, values))


def _budget_label(budget: float) -> str:
    return str(int(budget)) if float(budget).is_integer() else str(budget)


def _choice_line(budget: float, choice: tuple[dict[str, Any], Config] | None) -> str:
    head = f"- **≤ {_budget_label(budget)} bits per image**:"
    if choice is None:
        return f"{head} no finished trial fits this budget."
    row, cfg = choice
    psnr, key = _quality(row)
    split = "held-out" if key == "heldout_psnr" else "validation"
    ssim = _num(row, "heldout_ssim" if key == "heldout_psnr" else "val_ssim")
    rfid = _num(row, "rfid")
    return (f"{head} trial `{row.get('trial_id')}` (K={_levels(cfg.model.codebook_size)}, β={cfg.model.beta:.3g}, "
            f"{_num(row, FIXED_RATE_KEY):.0f} bits): {split} PSNR {psnr:.2f} dB, "
            f"SSIM {'n/a' if ssim is None else f'{ssim:.3f}'}, rFID {'n/a' if rfid is None else f'{rfid:.1f}'} "
            f"→ `presets/{_preset_name(budget)}`")


def _recommendation(rows: Sequence[dict[str, Any]], front: list[int], counts: dict[str, int],
                    choices: dict[float, tuple[dict[str, Any], Config] | None]) -> str:
    status = ", ".join(f"{n} {s}" for s, n in counts.items())
    overview = (f"{len(rows)} trials ({status}); {len(front)} on the Pareto front of entropy-coded rate against "
                f"validation PSNR ({FRONT_MARK}).")
    if len(front) >= 2:
        low, high = rows[front[0]], rows[front[-1]]
        overview += (f" Along the front, validation PSNR goes from {_num(low, 'val_psnr'):.2f} dB at "
                     f"{_num(low, RATE_KEY):.0f} bits to {_num(high, 'val_psnr'):.2f} dB at "
                     f"{_num(high, RATE_KEY):.0f} bits per image.")
    lines = ["## Recommendation", "", overview, "",
             "Best trial per budget of fixed bits per image (held-out PSNR, else the last validation PSNR):", ""]
    lines += [_choice_line(budget, choice) for budget, choice in choices.items()]
    return "\n".join(lines)


# --- plots ------------------------------------------------------------------------------------


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _codebook_size(row: dict[str, Any]) -> float:
    """K of the trial: the sampled one, else the largest level's; NaN when unknown."""
    sizes = (row.get("codebook_size") or {}).values()
    k = (row.get("params") or {}).get("model.codebook_size") or max(sizes, default=None)
    return float(k) if k else math.nan


def _pareto_png(rows: Sequence[dict[str, Any]], front: list[int]) -> bytes:
    """Entropy-coded rate against validation PSNR: finished trials coloured by log2 K (early-stopped
    ones hollow) and the front as a step line."""
    plt = _pyplot()
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    shown = [r for r in rows if _finished(r)]
    log_k = np.log2([_codebook_size(r) for r in shown])
    known = log_k[np.isfinite(log_k)]
    low, high = (known.min(), known.max()) if known.size else (0.0, 1.0)
    norm = Normalize(low - 0.5, high + 0.5) if low == high else Normalize(low, high)
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")  # grey: K unknown
    colours = cmap(norm(log_k))

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for early, label in ((False, "trained to the end"), (True, "stopped early (ASHA)")):
        idx = [i for i, r in enumerate(shown) if (r.get("status") == "STOPPED_EARLY") == early]
        if idx:
            x = [_num(shown[i], RATE_KEY) for i in idx]
            y = [_num(shown[i], "val_psnr") for i in idx]
            face = "none" if early else colours[idx]
            ax.scatter(x, y, s=45, facecolors=face, edgecolors=colours[idx], linewidths=1.5, label=label)
    ax.step([_num(rows[i], RATE_KEY) for i in front], [_num(rows[i], "val_psnr") for i in front],
            where="post", color="black", linewidth=1.2, label="Pareto front")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="log2 K (codebook size)")
    ax.set_xlabel("entropy-coded rate (bits per image)")
    ax.set_ylabel("validation PSNR (dB)")
    ax.set_title(f"Rate–distortion of the sweep ({len(shown)} finished trials)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _png(fig)


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Silence optuna's INFO logs and its experimental / small-sample warnings."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)  # few-trial notices from the plots and PED-ANOVA
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _space_distribution(spec: dict[str, Any]) -> Any:
    """The Optuna distribution of a search-space entry; None for a type not mapped here."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kind = spec.get("type")
    if kind == "choice":
        return CategoricalDistribution(list(spec["values"]))
    if kind in ("uniform", "loguniform"):
        return FloatDistribution(float(spec["low"]), float(spec["high"]), log=kind == "loguniform")
    if kind in ("int", "randint", "loguniform_int"):
        return IntDistribution(int(spec["low"]), int(spec["high"]), log=kind == "loguniform_int")
    return None


def _inferred_distribution(values: list[Any]) -> Any:
    """A distribution spanning the observed values (widened when they are all equal, as Optuna
    needs low < high): ints -> IntDistribution, positive floats -> log-scale FloatDistribution."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in values):
        return CategoricalDistribution(sorted(set(values), key=str))
    if all(isinstance(v, numbers.Integral) for v in values):
        low, high = int(min(values)), int(max(values))
        return IntDistribution(low, max(high, low + 1))
    low, high = float(min(values)), float(max(values))
    if high <= low:
        high = low + 0.01 * max(abs(low), 1.0)
    return FloatDistribution(low, high, log=low > 0)


def _study(rows: Sequence[dict[str, Any]], space: dict[str, Any] | None) -> Any:
    """An in-memory two-objective study (minimise entropy-coded rate, maximise validation PSNR)."""
    import optuna

    params = [{k: v for k, v in (r.get("params") or {}).items() if v is not None} for r in rows]
    distributions = {}
    for name in _unique(k for p in params for k in p):
        spec = (space or {}).get(name)
        from_space = _space_distribution(spec) if isinstance(spec, dict) else None
        distributions[name] = from_space or _inferred_distribution([p[name] for p in params if name in p])

    study = optuna.create_study(directions=["minimize", "maximize"])
    for row, p in zip(rows, params):
        study.add_trial(optuna.trial.create_trial(
            params=p, distributions={k: distributions[k] for k in p},
            values=[_num(row, RATE_KEY), _num(row, "val_psnr")]))
    return study


def _optuna_pngs(rows: Sequence[dict[str, Any]],
                 space: dict[str, Any] | None) -> tuple[dict[str, bytes], dict[str, str]]:
    """The importance and parallel-coordinate plots that can be drawn, and why the others cannot."""
    shown = [r for r in rows if _finished(r)]
    pngs: dict[str, bytes] = {}
    skipped: dict[str, str] = {}
    with _quiet_optuna():
        from optuna.visualization.matplotlib import plot_parallel_coordinate, plot_param_importances

        study = _study(shown, space)
        trials = study.get_trials(deepcopy=False)
        names = _unique(k for t in trials for k in t.params)
        varying = [n for n in names if len({repr(t.params.get(n)) for t in trials}) > 1]
        if len(trials) < 2:
            skipped["importance"] = f"needs at least 2 finished trials, got {len(trials)}"
        elif not varying:
            skipped["importance"] = "no hyperparameter varies across the finished trials"
        else:
            # The default evaluator (PED-ANOVA) ranks what it takes to reach *low* target values,
            # hence -PSNR; constant parameters are left out, as they would only get the prior's share.
            ax = plot_param_importances(study, params=varying, target=lambda t: -t.values[1], target_name="PSNR")
            pngs["importance"] = _png(ax.figure)
        if names:
            ax = plot_parallel_coordinate(study, target=lambda t: t.values[1], target_name="PSNR")
            ax.figure.set_size_inches(max(8.0, 1.8 * (len(names) + 1)), 5.5)  # room for each axis's ticks
            pngs["parallel_coordinates"] = _png(ax.figure)
        else:
            skipped["parallel_coordinates"] = "the trials recorded no hyperparameters"
    return pngs, skipped


# --- the report -------------------------------------------------------------------------------


def _preset_name(budget: float) -> str:
    return f"best_{_budget_label(budget)}bits.yaml"


def _write_preset(out: str, budget: float, row: dict[str, Any], cfg: Config) -> str:
    _, key = _quality(row)
    split = "held-out" if key == "heldout_psnr" else "val"
    header = (f"# emojiray tune: best {split} PSNR at <= {_budget_label(budget)} bits per image "
              f"(trial {row.get('trial_id')})\n")
    return storage.write_text(storage.join(out, "presets", _preset_name(budget)), header + dump_yaml(cfg))


def _plain(value: Any) -> Any:
    """A JSON-ready scalar (numpy scalars from the search become Python numbers)."""
    return value.item() if isinstance(value, np.generic) else value


def write_report(
    rows: Sequence[dict[str, Any]],
    out: str,
    base_cfg: Config,
    budgets: Iterable[float] | None = None,
    space: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write the sweep report under ``out`` (see the module docstring) and return its summary.

    ``budgets`` are in fixed bits per image (None or empty: :func:`default_budgets`); ``space`` is the
    sweep's search space (``{key: {"type": ..., "low": ..., "high": ...}}``), from which the Optuna
    distributions are taken, else they are inferred from the observed values.
    """
    if not any(_finished(r) for r in rows):
        raise EmojirayError(f"no finished trials to report: none of the {len(rows)} trials has both an entropy-coded "
                            "rate and a validation PSNR (see their errors in the Ray Tune logs)")
    front = pareto_front(rows)
    counts = dict(Counter(str(r.get("status")) for r in rows))
    log(f"sweep report: {len(rows)} trials ({counts}), {len(front)} on the Pareto front")

    choices: dict[float, tuple[dict[str, Any], Config] | None] = {}
    best_summary = []
    for budget, row in best_per_budget(rows, budgets).items():
        entry: dict[str, Any] = {"budget_bits": budget, "trial_id": None}
        choices[budget] = None
        if row is not None:
            cfg = apply_params(base_cfg, row.get("params") or {})
            choices[budget] = (row, cfg)
            entry.update(trial_id=row.get("trial_id"), quality_metric=_quality(row)[1],
                         params={k: _plain(v) for k, v in (row.get("params") or {}).items()},
                         metrics={k: _plain(row.get(k)) for k in METRICS},
                         preset=_write_preset(out, budget, row, cfg))
            log(f"best at <= {_budget_label(budget)} bits per image: trial {row.get('trial_id')} -> {entry['preset']}")
        best_summary.append(entry)

    columns = _columns(rows)
    on_front = set(front)
    records = [_record(row, i in on_front) for i, row in enumerate(rows)]
    storage.write_text(storage.join(out, "trials.csv"), _csv(columns, records))
    by_rate = [records[i] for i in sorted(range(len(rows)), key=lambda i: _by_rate(rows[i]))]
    markdown = (f"# Sweep trials\n\nSorted by entropy-coded rate; {FRONT_MARK} in `on_front` marks the Pareto "
                f"front (lowest rate for its validation PSNR).\n\n{_markdown_table(columns, by_rate)}\n\n"
                f"{_recommendation(rows, front, counts, choices)}\n")
    storage.write_text(storage.join(out, "trials.md"), markdown)

    plots = {"pareto": storage.write_bytes(storage.join(out, "pareto.png"), _pareto_png(rows, front))}
    pngs, skipped = _optuna_pngs(rows, space)
    plots.update({name: storage.write_bytes(storage.join(out, f"{name}.png"), png) for name, png in pngs.items()})
    for name, reason in skipped.items():
        log(f"{name} plot skipped: {reason}")

    summary = {
        "front": [rows[i].get("trial_id") for i in front],
        "best_per_budget": best_summary,
        "counts": counts,
        "plots": plots,
        "skipped_plots": skipped,
    }
    storage.write_json(storage.join(out, "sweep_summary.json"), summary)
    log(f"sweep report written to {out}")
    return summary
