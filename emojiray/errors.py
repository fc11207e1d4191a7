"""User-facing errors: raised for bad input or environment, printed as one line by the CLI."""


class EmojirayError(Exception):
    """A problem the user can fix (bad argument, missing file, no network...).

    The CLI prints ``emojiray: error: <message>`` and exits non-zero, with no traceback.
    Keep messages to one line that says what is wrong and, where possible, what to do.
    """


class SkipImage(EmojirayError):
    """One input image cannot be used; a batch job records the reason and goes on."""
