"""The stage runner: what is up to date is skipped, what changed is redone with everything that reads it."""

from __future__ import annotations

import pytest

from emojiray import storage
from emojiray.errors import EmojirayError
from emojiray.stages import Stage, run_stages


class Toy:
    """Four stages: a (always runs), b reads a, c reads b, d reads a only; settings per stage."""

    def __init__(self, root):
        self.root = str(root)
        self.settings = {"b": 1, "c": 1, "d": 1}
        self.calls: list[tuple[str, bool]] = []  # (stage, fresh)
        self.fail: str | None = None

    def work(self, name: str, ctx):
        self.calls.append((name, ctx.fresh))
        if name == self.fail:
            raise RuntimeError(f"{name} interrupted")
        storage.write_json(storage.join(self.root, f"{name}.out"), {"from": sorted(ctx.done)})
        return {"value": self.settings.get(name, 0), "read": sorted(ctx.done)}

    def stages(self):
        def stage(name, after=()):
            return Stage(name, lambda ctx: self.work(name, ctx), key=lambda done: self.settings[name], after=after,
                         outputs=(f"{name}.out",))

        return [Stage("a", lambda ctx: self.work("a", ctx)), stage("b", ("a",)), stage("c", ("b",)), stage("d", ("a",))]

    def run(self, **kw):
        self.calls = []
        return run_stages(self.stages(), self.root, log=lambda *_: None, **kw)

    def ran(self):
        return [name for name, _ in self.calls]


def test_a_second_run_skips_what_is_up_to_date_and_keeps_its_results(tmp_path):
    toy = Toy(tmp_path)
    first = toy.run()
    assert toy.ran() == ["a", "b", "c", "d"] and not any(r.get("skipped") for r in first.values())
    again = toy.run()
    assert toy.ran() == ["a"]  # a has no key: it always runs (cheap, or keeps track of itself)
    assert [n for n, r in again.items() if r.get("skipped")] == ["b", "c", "d"]
    assert again["c"]["value"] == 1 and again["c"]["read"] == ["a", "b"] and "seconds" in again["c"]


def test_a_changed_setting_redoes_the_stage_and_every_stage_that_reads_it(tmp_path):
    toy = Toy(tmp_path)
    toy.run()
    toy.settings["b"] = 2
    toy.run()
    assert toy.ran() == ["a", "b", "c"]  # d reads a only
    assert dict(toy.calls)["c"] is True  # c's inputs were redone: start over, do not resume
    toy.run()
    assert toy.ran() == ["a"]


def test_force_redoes_everything_and_from_redoes_a_stage_and_every_later_one(tmp_path):
    toy = Toy(tmp_path)
    toy.run()
    toy.run(force=True)
    assert toy.ran() == ["a", "b", "c", "d"] and all(fresh for _, fresh in toy.calls)
    toy.run(start="c")
    assert toy.ran() == ["a", "c", "d"]
    with pytest.raises(EmojirayError, match="--from 'sample': no such stage in this run; its stages: a, b, c, d"):
        toy.run(start="sample")
    assert toy.calls == []  # checked before any stage runs


def test_a_missing_output_or_an_interrupted_stage_is_redone_and_only_then_may_resume(tmp_path):
    toy = Toy(tmp_path)
    toy.run()
    (tmp_path / "d.out").unlink()
    toy.run()
    assert toy.ran() == ["a", "d"]

    toy.settings["c"] = 2
    toy.fail = "c"
    with pytest.raises(RuntimeError):
        toy.run()
    assert toy.ran() == ["a", "c"] and dict(toy.calls)["c"] is True  # other settings than on disk: start over
    toy.fail = None
    (tmp_path / "stages" / "c.json").unlink()  # as if c had never finished
    toy.run()
    assert toy.ran() == ["a", "c"] and dict(toy.calls)["c"] is False  # no marker: an interrupted run may resume


def test_the_pipeline_names_its_stages_when_from_is_unknown_before_any_work(tmp_path, capsys):
    from emojiray.cli import main

    run = tmp_path / "run"
    assert main(["pipeline", "--preset", "cpu", "--out", str(run), "--from", "prior_maskgit"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("emojiray: error: --from 'prior_maskgit': no such stage in this run; its stages: prepare, info, "
                   "stream, train_vqvae, eval_vqvae, extract_codes, prior_transformer, samples_transformer, extensions")
    assert not run.exists()
