"""Whether outside text stayed text: every message, ephemeral, response-URL post, view and
acknowledgement the bot sent LocalSlack, checked for live markup that only hostile input put
there (see PRODUCT.md, "Trust at the seams": outside text is shown as typed).

The hostile payloads carry marker words (``EVIL``, ``FAKE``, ``URGENT`` …) so that the checks
tell them from what the bot writes itself (its own mentions, bold and code spans).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from bot.console.world import World

#: observation 3: a notification that pings everyone and links to a phishing page
HOSTILE_TEXT = (
    "<!channel> <!here> <!everyone> <@U0EVIL> <!subteam^S0EVIL|@it-leads> "
    "<https://evil.example|Approve here> *URGENT* _really_ ~gone~ `tick` ```fence```\n"
    "> quoted FAKE\n\n*:white_check_mark: FAKE approved by @carol (IT lead)*"
)
#: observation 4: a parameter value that breaks out of its code span to fake an approval line
HOSTILE_VALUE = (
    "ok`\n\n*:white_check_mark: FAKE Approved by @carol (IT lead)* — no action needed\n`x"
)
#: a workflow name from Nexthink
HOSTILE_NAME = "<!here> Clear disk space *URGENT* <@U0EVIL>"

#: mentions and links that must never be live in mrkdwn, not even in a code span
_LIVE = ("<!channel", "<!here", "<!everyone", "<@U0EVIL", "<!subteam^S0EVIL", "<https://evil")
#: formatting that must never be live outside a code span
_FORMATTING = ("*URGENT*", "_really_", "~gone~", "```")
#: a line of the message that hostile text started: what follows a line break it carried
_STARTED_LINE = re.compile(
    r"^[\s*_~>`]*(&gt;)?[\s*_~`]*(:[a-z_]+:\s*)?(quoted )?FAKE", re.MULTILINE
)
_CODE_SPAN = re.compile(r"`[^`]*`")

_SENDING = frozenset(
    {
        "chat.postMessage",
        "chat.postEphemeral",
        "chat.update",
        "chat.scheduleMessage",
        "response_url",
        "views.open",
        "views.update",
        "views.push",
        "views.publish",
    }
)


def _mrkdwn(value: Any) -> Iterator[str]:
    """The mrkdwn text objects in a Block Kit value (``plain_text`` is shown as typed)."""
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn" and isinstance(value.get("text"), str):
            yield value["text"]
        for item in value.values():
            yield from _mrkdwn(item)
    elif isinstance(value, list):
        for item in value:
            yield from _mrkdwn(item)


def mrkdwn_of(params: dict[str, Any]) -> list[str]:
    """Every mrkdwn string of a message or view as sent: the top-level ``text`` (the
    notification, which Slack reads as mrkdwn) and each mrkdwn object of the blocks and view."""
    found = [params["text"]] if isinstance(params.get("text"), str) else []
    for key in ("blocks", "view", "attachments"):
        found += list(_mrkdwn(params.get(key)))
    return found


def problems_in(text: str) -> list[str]:
    """What is live in one mrkdwn string that hostile input made so."""
    found = [f"live {marker!r}" for marker in _LIVE if marker in text]
    if text.count("`") % 2:
        found.append("a code span left open (odd number of backticks)")
    prose = _CODE_SPAN.sub("", text)
    found += [f"live {marker!r}" for marker in _FORMATTING if marker in prose]
    for match in _STARTED_LINE.finditer(text):
        found.append(f"a line started by outside text: {match.group()!r}")
    return found


def live_markup(world: World) -> list[str]:
    """Every problem in everything the bot sent Slack so far (calls, and the acks kept as
    messages), as ``method: problem: text``; empty when all outside text stayed text."""
    found: list[str] = []
    for call in world.slack.calls:
        if call.method not in _SENDING:
            continue
        for text in mrkdwn_of(call.params):
            found += [f"{call.method}: {p}: {text[:300]!r}" for p in problems_in(text)]
    for messages in world.slack.messages.values():
        for message in messages:
            if message.via != "ack":
                continue
            for text in mrkdwn_of({"text": message.text, "blocks": message.blocks}):
                found += [f"ack: {p}: {text[:300]!r}" for p in problems_in(text)]
    return found


def sent_count(world: World) -> int:
    """How many messages and views the bot has sent Slack so far."""
    return sum(1 for call in world.slack.calls if call.method in _SENDING)
