"""Declared stages, one small runner, one rule for "up to date" (no Ray, no PyTorch).

A :class:`Stage` says what it reads (``after``: earlier stages), what else its output depends on
(``key``: its settings) and what it writes (``outputs``). The runner keeps one marker per stage,
``<run>/stages/<name>.json``: the fingerprint of that key and of the versions of the stages it
reads, the result it returned and a version of its own. A stage runs again when

- it is forced (``force``, or ``start``: this stage and every later one),
- it has no marker (it never finished) or one of its outputs is missing, or
- its fingerprint changed (other settings, or a stage it reads was redone since);

otherwise it is skipped and its recorded result reused. A stage without a key always runs (cheap
stages, and stages that keep track of their own outputs, like data preparation). Its function gets
a :class:`StageContext`: the earlier results, and whether to start over (``fresh``) or whether it
may pick up an interrupted run of the same inputs.

:func:`cached` is the same rule for one piece of work, for code that caches inside a stage.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from emojiray import storage
from emojiray.errors import EmojirayError

MARKERS = "stages"  # the markers' folder in a run


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able parts (keys sorted; other objects by ``str``)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class StageContext:
    """What a stage's function gets."""

    done: dict[str, dict[str, Any]]  # the results of the stages before it, by name
    fresh: bool  # start over: forced, or what is on disk was made from other inputs
    versions: dict[str, str] = field(default_factory=dict)  # the earlier stages' versions (change when redone)


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[StageContext], dict[str, Any]]  # does the work; returns what the run records of it
    key: Callable[[dict[str, dict[str, Any]]], Any] | None = None  # its settings; None: always runs
    after: tuple[str, ...] = ()  # the stages whose outputs it reads
    outputs: tuple[str, ...] = ()  # files it writes (relative to the run): one missing means not done


def cached(marker: str, key: Any, work: Callable[[bool], dict[str, Any]], force: bool = False,
           outputs: Sequence[str] = (), what: str = "", log=print) -> tuple[dict[str, Any], str, bool]:
    """``work(fresh)`` unless ``marker`` records a result for the same ``key`` and every URI in
    ``outputs`` exists: (result, version, whether it ran). ``fresh`` is True when forced or when
    the marker was written for another key (start over); False when there is no marker (an
    interrupted run may resume)."""
    fp = fingerprint(key)
    old = storage.read_json(marker) if storage.exists(marker) else None
    if not force and old and old.get("fingerprint") == fp and "result" in old and all(map(storage.exists, outputs)):
        log(f"{what or storage.basename(marker)} is up to date; use --force to redo it")
        return old["result"], old["version"], False
    result = work(force or old is not None)
    finished = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    version = fingerprint(fp, finished, time.time_ns())
    storage.write_json(marker, {"fingerprint": fp, "version": version, "finished": finished, "result": result})
    return result, version, True


def check_start(stages: Sequence[Stage], start: str | None) -> None:
    names = [s.name for s in stages]
    if start is not None and start not in names:
        raise EmojirayError(f"--from {start!r}: no such stage in this run; its stages: {', '.join(names)}")


def run_stages(stages: Sequence[Stage], root: str, force: bool = False, start: str | None = None,
               log=print) -> dict[str, dict[str, Any]]:
    """Run ``stages`` in order for the run at ``root``: {name: its result + "seconds" (+ "skipped": True)}."""
    check_start(stages, start)
    done: dict[str, dict[str, Any]] = {}
    versions: dict[str, str] = {}
    ran: set[str] = set()
    forced = force
    for st in stages:
        forced = forced or st.name == start
        t = time.perf_counter()
        upstream_ran = any(a in ran for a in st.after)
        ctx = StageContext(done, fresh=forced or upstream_ran, versions=dict(versions))
        if st.key is None:
            result = st.run(ctx)
            versions[st.name] = fingerprint(result)
        else:
            key = {"settings": st.key(done), "after": {a: versions[a] for a in st.after}}

            def work(fresh: bool, st=st, ctx=ctx) -> dict[str, Any]:
                ctx.fresh = ctx.fresh or fresh
                return st.run(ctx)

            result, versions[st.name], did = cached(
                storage.join(root, MARKERS, f"{st.name}.json"), key, work, force=forced,
                outputs=[storage.join(root, o) for o in st.outputs], what=f"stage {st.name}", log=log)
            if did:
                ran.add(st.name)
            else:
                result = {**result, "skipped": True}
        done[st.name] = {**result, "seconds": round(time.perf_counter() - t, 2)}
    return done
