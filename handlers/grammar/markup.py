"""Slack's markup in a command's text: mentions, channels, user groups and links, then entities.

With "escape channels, users, and links" on (the manifest's ``should_escape: true``) Slack sends
``<@U123|name>`` for a mention, ``<#C123|name>`` for a channel, ``<!subteam^S123|@team>`` for a user
group, ``<mailto:a@b.c|a@b.c>`` and ``<http://host|host>`` for what it auto-linked. ``units(text)``
reads each as one indivisible ``Markup`` piece, then decodes ``&amp;`` ``&lt;`` ``&gt;`` (so a typed
``<`` never starts markup), drops zero-width spaces and turns non-breaking spaces into spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = ["Markup", "MarkupKind", "units"]

_SPACES = {"\u00a0": " ", "\u2007": " ", "\u202f": " "}
_INVISIBLE = frozenset("\u200b\u2060\ufeff")
_ENTITY = re.compile(r"&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}
_MARKUP = re.compile(r"<([^<>\s][^<>]*)>")

MarkupKind: TypeAlias = Literal["user", "channel", "usergroup", "special", "email", "link"]


def _decode(text: str) -> str:
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], text)


@dataclass(frozen=True)
class Markup:
    """One piece of Slack markup: ``<@U1|bob>``, ``<#C1|general>``, ``<mailto:…>``, ``<http://…>``."""

    kind: MarkupKind
    value: str
    label: str | None

    @property
    def text(self) -> str:
        """What the person saw in their message box."""
        if self.kind == "user":
            return f"@{self.label.lstrip('@')}" if self.label else f"<@{self.value}>"
        if self.kind == "channel":
            return f"#{self.label}" if self.label else f"<#{self.value}>"
        if self.kind == "usergroup":
            return self.label or f"<!subteam^{self.value}>"
        if self.kind == "special":
            return self.label or f"@{self.value}"
        if self.kind == "email":
            return self.value
        return self.label or self.value


def _piece(inner: str) -> Markup:
    body, _, raw_label = inner.partition("|")
    label = _decode(raw_label) or None
    if body.startswith("@"):
        return Markup("user", body[1:], label)
    if body.startswith("#"):
        return Markup("channel", body[1:], label)
    if body.startswith("!subteam^"):
        return Markup("usergroup", body[len("!subteam^") :], label)
    if body.startswith("!"):
        return Markup("special", body[1:].partition("^")[0], label)
    if body[:7].casefold() == "mailto:":
        return Markup("email", _decode(body[7:]).partition("?")[0], label)
    return Markup("link", _decode(body), label)


def units(text: str) -> list[str | Markup]:
    """Slack markup first, then entities: one character (or one markup piece) per unit."""
    found: list[str | Markup] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "<" and (m := _MARKUP.match(text, i)):
            found.append(_piece(m.group(1)))
            i = m.end()
        elif char == "&" and (m := _ENTITY.match(text, i)):
            found.append(_ENTITIES[m.group(1)])
            i = m.end()
        else:
            if char not in _INVISIBLE:
                found.append(_SPACES.get(char, char))
            i += 1
    return found
