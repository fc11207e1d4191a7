"""A new extension is one file plus one registration line: a toy extension, registered here, is
accepted by the config and run by the pipeline's extension stage, measured once while nothing
changes, its demo drawn every run."""

from __future__ import annotations

import pytest

from emojiray import storage
from emojiray.config import load_config
from emojiray.errors import EmojirayError
from emojiray.extensions import stage
from emojiray.extensions.interface import Extension, ExtensionRun
from emojiray.registry import EXTENSIONS


# -- the toy extension: what a contributor writes in its own file ------------------------------------

CALLS: list[str] = []


def toy_evaluate(run: ExtensionRun) -> dict:
    CALLS.append("evaluate")
    record = {"summary": {"score": 0.5}, "vqvae": run.paths.vqvae, "detail": list(range(3))}
    storage.write_json(storage.join(run.out, "toy.json"), record)
    return record


def toy_demo(run: ExtensionRun, names: list[str], log=print) -> None:
    CALLS.append(f"demo {names[0]}")


TOY = Extension(evaluate=toy_evaluate, demo=toy_demo)


@pytest.fixture
def toy(monkeypatch):
    EXTENSIONS.register("toy", TOY)  # the one registration line
    CALLS.clear()
    import emojiray.raykit

    monkeypatch.setattr(emojiray.raykit, "run_task", lambda fn, *args, ray_cfg=None, **kw: fn(*args, **kw))
    yield "toy"
    EXTENSIONS.unregister("toy")


def test_the_extension_stage_runs_a_registered_extension_and_keeps_its_measurement(toy, tmp_path):
    cfg = load_config("smoke", ["extensions.run=[toy]", "extensions.demo=[grinning face]"])
    stage.check(cfg)
    assert stage.needs(cfg) == set()  # no helper model, no extra prior to train

    def run(codes_version="codes-1"):
        return stage.run_extensions(cfg, str(tmp_path), "data", "vqvae", {}, "codes", codes_version,
                                    log=lambda *_: None)

    assert run() == {"toy": {"score": 0.5}}  # its summary block is its headline
    assert CALLS == ["evaluate", "demo grinning face"]
    assert storage.read_json(str(tmp_path / "extensions" / "toy.json"))["vqvae"] == "vqvae"
    assert run() == {"toy": {"score": 0.5}} and CALLS[2:] == ["demo grinning face"]  # measured once
    run("codes-2")  # another tokenizer: measured again
    assert CALLS[3:] == ["evaluate", "demo grinning face"]
    (tmp_path / "extensions" / "toy.json").unlink()  # its output gone: measured again
    run("codes-2")
    assert CALLS[5:] == ["evaluate", "demo grinning face"]


def test_unregistered_extensions_and_unknown_needs_are_one_line_errors():
    with pytest.raises(EmojirayError, match="'extensions.run' is \\['toy'\\]: must be one of interpolate, condition"):
        load_config("smoke", ["extensions.run=[toy]"])
    with pytest.raises(ValueError, match="unknown needs \\['gpu'\\]"):
        Extension(evaluate=toy_evaluate, needs=("gpu",))


def test_the_built_in_extensions_declare_what_they_need():
    cfg = load_config("smoke")
    assert stage.needs(cfg) == {"mask_prior", "vendor_prior", "label_priors", "classifier", "upscaler"}
    assert EXTENSIONS["inpaint"].needs == ("mask_prior",) and EXTENSIONS["upscale"].needs == ("upscaler",)
    assert all(EXTENSIONS[name].demo for name in ("interpolate", "restyle", "upscale", "inpaint"))
    assert EXTENSIONS["condition"].demo is None
