"""Block Kit as terminal text: what a person would read in Slack, with buttons numbered."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Choice", "Renderer"]

_EMOJI = {
    "white_check_mark": "✅",
    "x": "❌",
    "warning": "⚠️",
    "hourglass_flowing_sand": "⏳",
    "hourglass": "⌛",
    "no_entry": "⛔",
    "no_entry_sign": "🚫",
    "raised_hand": "✋",
    "arrow_forward": "▶️",
    "boom": "💥",
    "construction": "🚧",
}
_TOKEN = re.compile(r"<([@#!])([^>|]+)(?:\|([^>]*))?>|<([^>|]+)\|([^>]*)>|<(https?://[^>]+)>")


@dataclass(frozen=True)
class Choice:
    """A numbered button: where it is and what it sends."""

    number: int
    label: str
    action_id: str
    value: str | None
    channel: str | None = None  # a message's channel …
    ts: str | None = None  # … and ts, or
    view_id: str | None = None  # a view's id


class Renderer:
    def __init__(self, user_name: Callable[[str], str], channel_name: Callable[[str], str]) -> None:
        self._user_name = user_name
        self._channel_name = channel_name
        self._next = 1

    def text(self, mrkdwn: str) -> str:
        def token(match: re.Match[str]) -> str:
            sigil, ident, label, url, url_label, bare = match.groups()
            if sigil == "@":
                return "@" + (label or self._user_name(ident))
            if sigil == "#":
                return "#" + (label or self._channel_name(ident))
            if sigil == "!":
                return label or ("@" + ident.split("^")[0])
            if url is not None:
                return (
                    f"{url_label} ({url})"
                    if url_label and not url.startswith("mailto:")
                    else (url_label or url)
                )
            return bare or ""

        out = _TOKEN.sub(token, mrkdwn)
        out = re.sub(r":([a-z0-9_+-]+):", lambda m: _EMOJI.get(m.group(1), m.group(0)), out)
        out = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"\1", out)
        return out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    def _plain(self, obj: Any) -> str:
        if not isinstance(obj, dict):
            return ""
        return self.text(str(obj.get("text", "")))

    def blocks(
        self,
        blocks: list[dict[str, Any]] | None,
        fallback: str,
        *,
        channel: str | None = None,
        ts: str | None = None,
        view_id: str | None = None,
    ) -> tuple[list[str], list[Choice]]:
        lines: list[str] = []
        choices: list[Choice] = []
        for block in blocks or [{"type": "section", "text": {"type": "mrkdwn", "text": fallback}}]:
            kind = block.get("type")
            if kind in {"section", "header"}:
                if block.get("text"):
                    lines += self._plain(block["text"]).splitlines()
                for item in block.get("fields") or []:
                    name, _, value = self._plain(item).partition("\n")
                    lines.append(f"  {name}: {value.replace(chr(10), ' ')}".rstrip())
                accessory = block.get("accessory")
                if isinstance(accessory, dict) and accessory.get("type") == "button":
                    choices.append(self._choice(accessory, channel, ts, view_id))
            elif kind == "context":
                parts = [self._plain(e) for e in block.get("elements") or [] if isinstance(e, dict)]
                lines.append("  · " + " ".join(p for p in parts if p))
            elif kind == "actions":
                row = []
                for element in block.get("elements") or []:
                    if isinstance(element, dict) and element.get("type") == "button":
                        choice = self._choice(element, channel, ts, view_id)
                        choices.append(choice)
                        row.append(f"[{choice.number}] {choice.label}")
                if row:
                    lines.append("  " + "   ".join(row))
            elif kind == "divider":
                lines.append("  ────")
        return lines, choices

    def _choice(
        self, element: dict[str, Any], channel: str | None, ts: str | None, view_id: str | None
    ) -> Choice:
        choice = Choice(
            number=self._next,
            label=self._plain(element.get("text")),
            action_id=str(element.get("action_id")),
            value=element.get("value"),
            channel=channel,
            ts=ts,
            view_id=view_id,
        )
        self._next += 1
        return choice
