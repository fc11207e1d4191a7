"""`emojiray report`: a static HTML page of a pipeline run's results (see :mod:`emojiray.report.html`)."""

from emojiray.report.html import build_report

__all__ = ["build_report"]
