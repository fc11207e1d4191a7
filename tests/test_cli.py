"""The `emojiray` command: subcommands wired up, one-line errors with no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from emojiray.cli import COMMANDS, build_parser, main


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emojiray", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_every_command_registers():
    parser = build_parser()
    required = {"data": ["info", "x"], "train_vqvae": ["--data", "d", "--out", "o"],
                "eval_vqvae": ["--checkpoint", "c", "--data", "d", "--out", "o"],
                "extract_codes": ["--vqvae", "v", "--data", "d", "--out", "o"],
                "train_prior": ["--codes", "c", "--out", "o"], "sample": ["--prior", "p", "--out", "o"],
                "eval_samples": ["--samples", "s", "--real", "r", "--out", "o"], "tune": ["--out", "o"],
                "report": ["--run", "r"]}
    for name in COMMANDS:
        args = parser.parse_args([name.replace("_", "-")] + required.get(name, []))
        assert callable(args.func), name


def test_config_command_prints_overrides(capsys):
    assert main(["config", "--preset", "smoke", "--set", "data.size=32"]) == 0
    out = capsys.readouterr().out
    assert "size: 32" in out and "num_cpus: 2" in out


@pytest.mark.parametrize("args, message", [
    (["config", "--set", "data.sze=32"], "unknown config key 'data.sze'"),
    (["config", "--preset", "nope"], "unknown preset 'nope'"),
    (["data", "info", "/nonexistent/dataset"], "no dataset at /nonexistent/dataset"),
    (["data", "prepare", "--source", "folder:/nonexistent", "--out", "/tmp/x"], "not a directory"),
    (["data", "prepare", "--source", "gopher:x", "--out", "/tmp/x"], "unknown source"),
    (["data", "prepare", "--size", "3", "--out", "/tmp/x", "--source", "folder:/tmp"], "data.size"),
    (["train-vqvae", "--data", "/nonexistent/ds", "--out", "/tmp/x"], "no dataset at /nonexistent/ds"),
    (["eval-vqvae", "--checkpoint", "/nonexistent/ck", "--data", "/tmp", "--out", "/tmp/x"], "checkpoint not found"),
])
def test_user_errors_are_one_line(args, message):
    proc = run_cli(*args)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [lines[0]] and lines[0].startswith("emojiray: error: ") and message in lines[0]
    assert "Traceback" not in proc.stderr


def test_prepare_and_info_end_to_end(npm_cache, tmp_path):
    out = tmp_path / "ds"
    env = {"EMOJIRAY_CACHE": str(npm_cache)}
    proc = run_cli("data", "prepare", "--source", "npm:google", "--size", "32", "--out", str(out),
                   "--set", "data.npm_version=0.0.0-test", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "prepare: 50 images" in proc.stdout
    sheet = tmp_path / "sheet.png"
    proc = run_cli("data", "info", str(out), "--by", "emotion", "--sheet", str(sheet), "--verify", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "images    50 from 51 inputs" in proc.stdout and "verified  " in proc.stdout
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (out / "manifest.json").unlink()  # now it looks like an interrupted run
    proc = run_cli("data", "info", str(out))
    assert proc.returncode == 1 and "incomplete" in proc.stderr and "Traceback" not in proc.stderr


def test_usage_error_exits_2():
    proc = run_cli("data", "prepare")  # --out is required
    assert proc.returncode == 2 and "--out" in proc.stderr
