"""A small progress line with a rate and an ETA, for long batch jobs (sampling, evaluation).

On a terminal it rewrites one line; in logs (CI, ``ray job logs``) it prints a line at most every
``every_s`` seconds and always at the end, so logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


class Progress:
    """``update(k)`` after each k units done; ``close()`` prints the final line."""

    def __init__(self, total: int, label: str, unit: str = "samples", done: int = 0,
                 stream: TextIO | None = None, every_s: float = 10.0, clock=time.perf_counter):
        self.total, self.label, self.unit = int(total), label, unit
        self.start_done = self.done = int(done)
        self.stream = stream or sys.stderr
        self.every_s, self.clock = every_s, clock
        self.t0 = self.last = clock()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    @property
    def rate(self) -> float:
        """Units per second done in this session (work skipped on resume does not count)."""
        elapsed = self.clock() - self.t0
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        text = f"{self.label}: {self.done:,}/{self.total:,} {self.unit} ({pct:.0f}%)"
        rate = self.rate
        if rate > 0:
            text += f", {rate:,.1f} {self.unit}/s"
            if self.done < self.total:
                text += f", ETA {_duration((self.total - self.done) / rate)}"
        return text

    def update(self, k: int) -> None:
        self.done += int(k)
        now = self.clock()
        if self.tty:
            self.stream.write("\r" + self.line() + "\033[K")
            self.stream.flush()
        elif now - self.last >= self.every_s and self.done < self.total:
            print(self.line(), file=self.stream, flush=True)
        if now - self.last >= self.every_s or self.tty:
            self.last = now

    def close(self) -> str:
        text = self.line() + f" in {_duration(self.clock() - self.t0)}"
        print(("\r" + text + "\033[K") if self.tty else text, file=self.stream, flush=True)
        return text
