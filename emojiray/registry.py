"""Named plug-ins: the kinds of prior and the extensions.

A registry maps a name to an entry. Built-in entries are written as ``"module:attribute"`` and
imported on first use, so that the config can check a name (``prior.kind``) without importing
PyTorch, and no module has to import every implementation to know their names. A new kind of
prior or a new extension is one new file that defines its entry plus one line here (or one
``register`` call anywhere, e.g. in a test)::

    PRIORS.register("toy", PriorKind(build=..., loss=..., sample=...))
    EXTENSIONS.register("toy", Extension(evaluate=..., demo=..., needs=(...)))

This module imports nothing from the rest of the package but its error type.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from emojiray.errors import EmojirayError


class Registry:
    """An ordered ``name -> entry`` map with one-line errors for unknown names."""

    def __init__(self, what: str, builtins: dict[str, str] | None = None):
        self.what = what  # "prior kind": how an error names an entry
        self._entries: dict[str, Any] = dict(builtins or {})

    def register(self, name: str, entry: Any) -> Any:
        """Add (or replace) ``name``; ``entry`` is the object or a ``"module:attribute"`` path."""
        if not name or not name.replace("_", "").isalnum():
            raise ValueError(f"a {self.what} name is letters, digits and underscores, got {name!r}")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, name: str) -> Any:
        if name not in self._entries:
            raise EmojirayError(f"unknown {self.what} {name!r}: choose from {', '.join(self._entries)}")
        entry = self._entries[name]
        if isinstance(entry, str):  # a built-in, imported on first use
            module, _, attr = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attr)
        return entry


# The kinds of prior over codes: each entry is an emojiray.models.prior.PriorKind.
PRIORS = Registry("prior kind", {
    "pixelsnail": "emojiray.models.pixelsnail:PRIOR",
    "transformer": "emojiray.models.transformer:PRIOR",
    "maskgit": "emojiray.models.maskgit:PRIOR",
})

# The extensions the pipeline can run (`extensions.run`): each entry is an
# emojiray.extensions.interface.Extension.
EXTENSIONS = Registry("extension", {
    "interpolate": "emojiray.extensions.interpolate:EXTENSION",
    "condition": "emojiray.extensions.condition:EXTENSION",
    "restyle": "emojiray.extensions.restyle:EXTENSION",
    "upscale": "emojiray.extensions.upscale:EXTENSION",
    "inpaint": "emojiray.extensions.inpaint:EXTENSION",
})
