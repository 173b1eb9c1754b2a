"""Outside text as Slack mrkdwn: the one rendering path, for the views and the core's reasons.

Text from outside (Nexthink, the webhook, people) is held as ``bot.text.Outside``; it reaches a
message only through ``shown`` (mrkdwn that reads exactly as typed) or ``code`` (a code span it
cannot leave). The Slack layer re-exports both from ``handlers.blocks``; the core uses them for the
reasons it gives (a refusal names the workflow or device someone typed), so that a reason and a
view escape alike. Pure functions: nothing here calls Slack.
"""

from __future__ import annotations

import re

from bot.text import Outside

__all__ = ["NEWLINE", "SECTION_LIMIT", "clip", "code", "escape", "shown"]

SECTION_LIMIT = 2900  # Slack refuses section text over 3,000 characters


#: what a line break in outside text shows as: it never starts a new line of the message
NEWLINE = "\u23ce"  # ⏎
_LINE_BREAKS = re.compile("\r\n|[\n\r\v\f\x85\u2028\u2029]")
#: mrkdwn's formatting markers and the look-alike each is shown as
_LOOK_ALIKES = {
    "*": "\u2217",  # ∗ ASTERISK OPERATOR (bold)
    "_": "\u02cd",  # ˍ MODIFIER LETTER LOW MACRON (italic)
    "~": "\u223c",  # ∼ TILDE OPERATOR (strike)
    "`": "\u02cb",  # ˋ MODIFIER LETTER GRAVE ACCENT (code, ``` fences)
}
_MARKER = re.compile("[*_~`]")
_QUOTE = "\u02c3"  # ˃ MODIFIER LETTER RIGHT ARROWHEAD, for a ">" that would start a quote
_SCHEME = re.compile(r"(?<=[A-Za-z0-9]):(?=//)")  # "https://": Slack would link it
_COLON = "\ua789"  # ꞉ MODIFIER LETTER COLON


def escape(text: str) -> str:
    """Slack's three escapes: no ``<!channel>``, ``<@U…>``, ``<!subteam^…>`` or ``<url|label>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _one_line(text: str) -> str:
    return _LINE_BREAKS.sub(NEWLINE, text)


def _alnum(char: str) -> bool:
    return char.isalnum()


def _unmarked(text: str) -> str:
    """Every marker that could open or close formatting as its look-alike. Slack formats only
    at word boundaries, so ``*``, ``_`` and ``~`` between two letters or digits
    (``restart_teams``, ``2*3``) stay as typed; a backtick never does."""

    def swap(match: re.Match[str]) -> str:
        at, marker = match.start(), match.group()
        inside_a_word = 0 < at < len(text) - 1 and _alnum(text[at - 1]) and _alnum(text[at + 1])
        return marker if marker != "`" and inside_a_word else _LOOK_ALIKES[marker]

    return _MARKER.sub(swap, text)


def shown(text: Outside, limit: int | None = None) -> str:
    """Outside text as mrkdwn that reads exactly as typed: the one way to put it in a message.

    * ``&``, ``<`` and ``>`` are escaped, so nothing in it is a mention (``<!here>``,
      ``<!channel>``, ``<!everyone>``, ``<!subteam^…>``, ``<@U…>``), a date or a link
      (``<https://…|label>``); a bare ``scheme://`` gets a look-alike colon so that Slack does not
      turn it into a link either.
    * Line breaks show as ⏎: the text never starts a new line of the message (a fake line of
      its own, a ``>`` quote, a code fence).
    * The formatting markers ``*`` ``_`` ``~`` and the backtick (hence ````` fences) show as
      look-alikes (∗ ˍ ∼ ˋ) wherever they could open or close formatting (not between two
      letters or digits, where Slack never formats: ``restart_teams`` stays as typed), and a
      leading ``>`` as ˃. Why look-alikes rather than an invisible
      character next to the marker: Slack documents no escape for them, and whether an invisible
      separator stops a marker depends on how the client classifies that character, which is not
      documented and may change; a look-alike is never a marker for any client, while it reads
      the same to a person (only a copy-and-paste carries the look-alike).

    ``limit`` clips the text as typed (before rendering, so that an escape is never cut).
    """
    if not isinstance(text, Outside):
        raise TypeError(
            f"shown() renders outside text (bot.text.Outside), not {type(text).__name__}"
        )
    raw = text.raw if limit is None else clip(text.raw, limit)
    raw = _unmarked(_one_line(raw))
    raw = _SCHEME.sub(_COLON, raw)
    stripped = raw.lstrip()
    if stripped.startswith(">"):
        raw = raw[: len(raw) - len(stripped)] + _QUOTE + stripped[1:]
    return escape(raw)


def code(text: Outside, limit: int | None = 300) -> str:
    """Outside text (a parameter value, an id someone typed) in a code span it cannot leave: a
    backtick shows as ˋ and a line break as ⏎, so the span always ends where the bot ends it;
    ``&``, ``<`` and ``>`` are escaped."""
    if not isinstance(text, Outside):
        raise TypeError(
            f"code() renders outside text (bot.text.Outside), not {type(text).__name__}"
        )
    raw = text.raw if limit is None else clip(text.raw, limit)
    raw = _one_line(raw).replace("`", "\u02cb")
    return f"`{escape(raw) or ' '}`"


def clip(text: str, limit: int = SECTION_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
