"""emojiray.sweep.report: Pareto front, best trial per budget, presets and the written report (no Ray)."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from emojiray.config import Config, load_config
from emojiray.errors import EmojirayError
from emojiray.sweep.report import apply_params, best_per_budget, default_budgets, pareto_front, write_report

SPACE = {
    "model.codebook_size": {"type": "loguniform_int", "low": 32, "high": 4096},
    "model.beta": {"type": "loguniform", "low": 0.01, "high": 2.0},
    "model.ema_decay": {"type": "uniform", "low": 0.9, "high": 0.999},
    "model.dead_code_steps": {"type": "choice", "values": [0, 50, 100, 400]},
    "train.lr": {"type": "loguniform", "low": 1e-4, "high": 3e-3},
}


def _row(trial_id, k, beta, entropy, val_psnr, fixed, heldout_psnr, status="TERMINATED", lr=1e-3, error=None):
    """A trial row as `emojiray tune` collects it (rfid and SSIMs only with a held-out evaluation)."""
    held = heldout_psnr is not None
    return {
        "trial_id": trial_id, "status": status,
        "params": {"model.codebook_size": k, "model.beta": beta, "model.ema_decay": 0.99,
                   "model.dead_code_steps": 100, "train.lr": lr},
        "epochs": 3 if status == "TERMINATED" else 1,
        "bits_per_image": fixed, "entropy_bits_per_image": entropy,
        "val_psnr": val_psnr, "val_ssim": None if val_psnr is None else val_psnr / 30,
        "heldout_psnr": heldout_psnr, "heldout_ssim": heldout_psnr / 30 if held else None,
        "rfid": 200 - 4 * heldout_psnr if held else None,
        "codes_used": {"bottom": k // 2, "top": k // 3}, "codebook_size": {"bottom": k, "top": k},
        "error": error,
    }


# Front (entropy rate, val PSNR): t0 (1500, 18.0), t2 (2200, 20.5), t4 (2500, 21.5); the others are dominated.
# t8 failed after reporting metrics that would dominate everything: it must be ignored.
ROWS = [
    _row("t0", 64, 0.25, 1500.0, 18.0, 1920.0, 17.8),
    _row("t1", 64, 1.0, 1700.0, 17.5, 1920.0, 17.4, lr=3e-4),
    _row("t2", 256, 0.25, 2200.0, 20.5, 2560.0, 20.1),
    _row("t3", 256, 0.1, 2300.0, 20.0, 2560.0, None, status="STOPPED_EARLY"),
    _row("t4", 512, 0.5, 2500.0, 21.5, 2880.0, 21.2, lr=2e-3),
    _row("t5", 1024, 0.25, 2900.0, 21.4, 3200.0, 21.0),
    _row("t6", 1024, 0.1, 3000.0, 21.0, 3200.0, None, status="STOPPED_EARLY"),
    _row("t7", 128, 2.0, None, None, None, None, status="ERROR", error="RuntimeError: CUDA out of memory"),
    _row("t8", 32, 0.3, 1000.0, 25.0, 1600.0, 24.0, status="ERROR", error="worker died | exit 1"),
]


def _ids(indices):
    return [ROWS[i]["trial_id"] for i in indices]


# --- selection --------------------------------------------------------------------------------


def test_pareto_front():
    assert _ids(pareto_front(ROWS)) == ["t0", "t2", "t4"]


def test_pareto_front_keeps_equal_points_and_other_keys():
    rows = [{"r": 1.0, "q": 2.0}, {"r": 1.0, "q": 2.0}, {"r": 1.0, "q": 1.0}, {"r": 0.5, "q": None}]
    assert pareto_front(rows, rate_key="r", quality_key="q") == [0, 1]
    # On the fixed rate with held-out PSNR, t3 and t6 (no held-out eval) drop out and t5 is dominated.
    assert _ids(pareto_front(ROWS, rate_key="bits_per_image", quality_key="heldout_psnr")) == ["t0", "t2", "t4"]


def test_best_per_budget():
    best = best_per_budget(ROWS, [5000, 1920, 2600, 1900])
    assert list(best) == [1900, 1920, 2600, 5000]
    assert best[1900] is None  # only the failed t8 is that cheap
    assert {b: r["trial_id"] for b, r in best.items() if r} == {1920: "t0", 2600: "t2", 5000: "t4"}


def test_best_per_budget_prefers_held_out_scores_and_falls_back_to_validation_psnr():
    rows = [{"trial_id": "held", "bits_per_image": 100.0, "heldout_psnr": 20.0, "val_psnr": 20.5},
            {"trial_id": "early", "bits_per_image": 100.0, "heldout_psnr": None, "val_psnr": 20.9},
            {"trial_id": "cheap", "bits_per_image": 50.0, "heldout_psnr": None, "val_psnr": 18.0}]
    best = best_per_budget(rows, [50, 100])
    assert best[100]["trial_id"] == "held"  # held-out and validation scores are not compared
    assert best[50]["trial_id"] == "cheap"  # only a validation score within this budget


def test_default_budgets():
    # Fixed rates of t0..t6: 1920 1920 2560 2560 2880 3200 3200 -> 25th pct 2240, median 2560, max 3200.
    assert default_budgets(ROWS) == [2240, 2560, 3200]
    assert list(best_per_budget(ROWS)) == list(best_per_budget(ROWS, [])) == [2240, 2560, 3200]


def test_apply_params():
    cfg = Config()
    before = cfg.to_dict()
    out = apply_params(cfg, {"model.codebook_size": 256, "model.code_dim": 16, "model.beta": 0.5,
                             "model.dead_code_steps": 50.0, "train.lr": 2e-3})
    assert out.model.codebook_size == [256, 256] and out.model.code_dim == [16, 16]
    assert out.model.beta == 0.5 and out.train.optim.lr == 2e-3
    assert out.model.dead_code_steps == 50 and isinstance(out.model.dead_code_steps, int)
    assert all(isinstance(k, int) for k in out.model.codebook_size)
    assert cfg.to_dict() == before
    with pytest.raises(EmojirayError, match="model.nope"):
        apply_params(cfg, {"model.nope": 1})


# --- the written report -----------------------------------------------------------------------


def test_write_report(tmp_path):
    lines = []
    summary = write_report(ROWS, str(tmp_path), Config(), budgets=[1900, 2600, 5000], space=SPACE, log=lines.append)

    with open(tmp_path / "trials.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(ROWS)
    assert {"trial_id", "status", "model.codebook_size", "train.lr", "epochs", "entropy_bits_per_image",
            "heldout_psnr", "rfid", "codes_used_bottom", "codes_used_top", "on_front", "error"} <= set(table[0])
    assert [r["trial_id"] for r in table if r["on_front"] == "yes"] == ["t0", "t2", "t4"]
    assert next(r for r in table if r["trial_id"] == "t7")["error"] == "RuntimeError: CUDA out of memory"

    markdown = (tmp_path / "trials.md").read_text()
    assert markdown.count("★") >= 3 and "## Recommendation" in markdown
    assert "trial `t2` (K=256, β=0.25" in markdown and "presets/best_2600bits.yaml" in markdown
    assert "≤ 1900 bits per image**: no finished trial" in markdown
    assert "worker died \\| exit 1" in markdown  # pipes escaped inside the table

    with Image.open(tmp_path / "pareto.png") as img:
        assert img.size[0] > 400 and img.size[1] > 300
    for name in ("importance.png", "parallel_coordinates.png"):
        with Image.open(tmp_path / name) as img:
            assert img.size[0] > 200

    for budget, k, beta in ((2600, 256, 0.25), (5000, 512, 0.5)):
        path = tmp_path / "presets" / f"best_{budget}bits.yaml"
        assert path.read_text().startswith(f"# emojiray tune: best held-out PSNR at <= {budget} bits per image")
        cfg = load_config(str(path))
        assert cfg.model.codebook_size == [k, k] and cfg.model.beta == beta
    assert not (tmp_path / "presets" / "best_1900bits.yaml").exists()

    assert json.loads((tmp_path / "sweep_summary.json").read_text()) == summary
    assert summary["front"] == ["t0", "t2", "t4"]
    assert summary["counts"] == {"TERMINATED": 5, "STOPPED_EARLY": 2, "ERROR": 2}
    assert [b["trial_id"] for b in summary["best_per_budget"]] == [None, "t2", "t4"]
    assert summary["best_per_budget"][2]["params"]["model.codebook_size"] == 512
    assert summary["best_per_budget"][2]["preset"].endswith("best_5000bits.yaml")
    assert summary["skipped_plots"] == {}
    assert any("best at <= 5000" in line for line in lines)


def test_write_report_single_trial_skips_importance(tmp_path):
    lines = []
    summary = write_report([ROWS[0], ROWS[7]], str(tmp_path), Config(), log=lines.append)
    assert "2 finished trials, got 1" in summary["skipped_plots"]["importance"]
    assert not (tmp_path / "importance.png").exists()
    assert (tmp_path / "parallel_coordinates.png").exists() and (tmp_path / "pareto.png").exists()
    assert [b["trial_id"] for b in summary["best_per_budget"]] == ["t0"]  # default budgets collapse to 1920
    assert any("importance plot skipped" in line for line in lines)


def test_write_report_constant_params_skip_importance(tmp_path):
    rows = [_row("a", 64, 0.25, 1500.0, 18.0, 1920.0, 17.8), _row("b", 64, 0.25, 1600.0, 18.5, 1920.0, 18.1)]
    summary = write_report(rows, str(tmp_path), Config(), log=lambda _: None)
    assert summary["skipped_plots"]["importance"] == "no hyperparameter varies across the finished trials"


@pytest.mark.parametrize("rows", [[], [ROWS[7]], [ROWS[8]]])
def test_write_report_without_finished_trials(tmp_path, rows):
    with pytest.raises(EmojirayError, match="no finished trials to report") as info:
        write_report(rows, str(tmp_path), Config(), log=lambda _: None)
    assert "\n" not in str(info.value)
