"""The search space of a sweep: validated against the config before anything starts (pure Python).

A space maps dotted config keys to a distribution::

    model.codebook_size: {type: loguniform_int, low: 32, high: 4096}
    model.beta:          {type: loguniform, low: 0.01, high: 2.0}
    model.dead_code_steps: {type: choice, values: [0, 50, 100, 400]}

Types: ``uniform`` and ``loguniform`` (floats), ``int`` and ``loguniform_int`` (integers, both
bounds included), ``choice`` (a list of values). A key of a per-level list (``model.codebook_size``,
``model.code_dim``) takes one value for every level. Every mistake is one line naming the key.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from emojiray.config import Config, config_from_dict, get_value, set_value
from emojiray.errors import EmojirayError

TYPES = ("uniform", "loguniform", "int", "loguniform_int", "choice")


def _field(cfg: Config, key: str) -> Any:
    try:
        return get_value(cfg, key)
    except EmojirayError:
        raise EmojirayError(f"invalid search space: unknown config key {key!r}") from None


def _number(spec: dict[str, Any], name: str, key: str) -> float:
    value = spec.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EmojirayError(f"invalid search space: {key}.{name} must be a number, got {value!r}")
    return value


def validate_space(space: Any, cfg: Config) -> dict[str, dict[str, Any]]:
    """Check every entry (known key, known type, sane bounds, values the key accepts); return it."""
    if not isinstance(space, dict) or not space:
        raise EmojirayError("invalid search space: tune.space must be a non-empty mapping of config keys")
    for key, spec in space.items():
        current = _field(cfg, key)
        if dataclasses.is_dataclass(current):
            raise EmojirayError(f"invalid search space: {key!r} is a config section, not a value")
        if not isinstance(spec, dict) or spec.get("type") not in TYPES:
            raise EmojirayError(f"invalid search space: {key} needs type: one of {', '.join(TYPES)}")
        kind = spec["type"]
        if kind == "choice":
            values = spec.get("values")
            if not isinstance(values, list) or not values:
                raise EmojirayError(f"invalid search space: {key} (choice) needs a non-empty list of values")
            candidates = values
        else:
            low, high = _number(spec, "low", key), _number(spec, "high", key)
            if not low < high:
                raise EmojirayError(f"invalid search space: {key} needs low < high, got {low} and {high}")
            if kind.startswith("log") and low <= 0:
                raise EmojirayError(f"invalid search space: {key} ({kind}) needs low > 0, got {low}")
            if kind.endswith("int") and not (float(low).is_integer() and float(high).is_integer()):
                raise EmojirayError(f"invalid search space: {key} ({kind}) needs integer bounds")
            candidates = [low, high]
        probe = config_from_dict(cfg.to_dict())
        for value in candidates:  # every value must be one the config field accepts
            try:
                apply_params(probe, {key: value})
            except EmojirayError as exc:
                raise EmojirayError(f"invalid search space: {exc}") from None
    return space


def apply_params(cfg: Config, params: dict[str, Any]) -> Config:
    """Set sampled values on ``cfg`` in place (a per-level list gets the value at every level)."""
    for key, value in params.items():
        current = _field(cfg, key)
        set_value(cfg, key, [value] * len(current) if isinstance(current, list) else value)
    return cfg
