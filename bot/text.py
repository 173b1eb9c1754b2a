"""Text the bot did not write: ``Outside``.

Workflow names and descriptions and error details from Nexthink, the webhook's question and
option labels, and whatever people type (parameter values, device names, deny reasons) are
*data*. They reach a Slack message only through the views' one rendering path
(``handlers.blocks.shown`` for mrkdwn, ``handlers.blocks.code`` for a code span,
``handlers.blocks.plain`` for ``plain_text``), which shows them exactly as typed and never as a
mention, a link or formatting.

``Outside`` is a small frozen wrapper, not a ``str``: it cannot be glued into a message by
accident. Formatting it (an f-string, ``str.format``, ``%s``) or concatenating it raises
``TypeError``, so a raw outside string that slips past the views fails loudly in the tests
instead of turning into live markup in Slack. ``.raw`` is the text as it came, for the core's
comparisons and for logs.

This module is neutral: the core and the Slack layer may both import it; it renders nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Outside", "outside"]


@dataclass(frozen=True, slots=True)
class Outside:
    """A string from outside the bot, held as data until a view renders it."""

    raw: str

    def __post_init__(self) -> None:
        if not isinstance(self.raw, str):
            raise TypeError(f"Outside holds a str, not {type(self.raw).__name__}")

    def __format__(self, spec: str) -> str:
        raise TypeError(
            "outside text cannot be formatted into a message: render it with "
            "handlers.blocks.shown(), code() or plain()"
        )

    def __str__(self) -> str:
        raise TypeError(
            "outside text has no str(): render it with handlers.blocks.shown(), code() or "
            "plain(), or read .raw"
        )

    def __bool__(self) -> bool:
        return bool(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


def outside(value: object) -> Outside:
    """``value`` as outside text (``None`` → empty; another ``Outside`` stays as it is)."""
    if isinstance(value, Outside):
        return value
    return Outside("" if value is None else str(value))
