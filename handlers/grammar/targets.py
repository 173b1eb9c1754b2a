"""Targets in a command: ``user:`` (a mention, a UPN or a SID), ``device:`` (a name or a Collector
UUID), or a bare mention. Channels and user groups are refused with the reason."""

from __future__ import annotations

import re
import unicodedata

from bot.nexthink.models import is_sid, is_upn, is_uuid
from bot.targets import DeviceTarget, UserTarget
from handlers.grammar.commands import MAX_DEVICE_NAME_LENGTH, MAX_VALUE_LENGTH
from handlers.grammar.errors import quoted
from handlers.grammar.parser import TARGET_PREFIXES, Parser
from handlers.grammar.words import Word

__all__ = ["read_target"]

_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{1,31}$")


def read_target(p: Parser, word: Word) -> UserTarget | DeviceTarget | None:
    """The target the word names, ``None`` if it is not a target."""
    found = word.prefix(TARGET_PREFIXES)
    if found is None:
        markup = word.only_markup
        if markup is not None and markup.kind == "user":
            return _user(p, word, word)
        if markup is not None and markup.kind in {"channel", "usergroup", "special"}:
            return _user(p, word, word)  # refused there, with the reason
        return None
    prefix, rest = found
    return _user(p, word, rest) if prefix == "user:" else _device(p, word, rest)


def _user(p: Parser, word: Word, rest: Word) -> UserTarget:
    kinds = {m.kind for m in rest.markups}
    markup = rest.only_markup
    if "channel" in kinds:
        raise p.error(
            f"{quoted(word.text)} is a channel, and a channel cannot be a target: name people with "
            "`user:@person` or devices with `device:NAME`."
        )
    if kinds & {"usergroup", "special"}:
        raise p.error(
            f"{quoted(word.text)} is a group, and groups cannot be targets: mention people one by one."
        )
    if markup is not None and markup.kind == "user":
        if not _SLACK_USER_ID.match(markup.value):
            raise p.error(f"{quoted(word.text)} is not a mention of a Slack user.")
        return UserTarget("mention", markup.value)
    text = markup.value if markup is not None and markup.kind == "email" else rest.text
    text = text.strip()
    if not text:
        raise p.error(
            "`user:` needs a person: an @mention, a UPN such as `alice@example.com` or a SID."
        )
    if len(text) > MAX_VALUE_LENGTH:
        raise p.error(
            f"The user {quoted(text)} is {len(text):,} characters long; at most {MAX_VALUE_LENGTH:,} are allowed."
        )
    if is_upn(text):
        return UserTarget("upn", text)
    if text[:2].casefold() == "s-" and is_sid("S" + text[1:]):
        return UserTarget("sid", "S" + text[1:])
    if text.startswith("@") and not kinds:
        raise p.error(
            f"{quoted(text)} is plain text, not a mention: pick the person from Slack's list as you "
            "type their name, or give their UPN (`user:alice@example.com`)."
        )
    raise p.error(
        f"{quoted(word.text)} names no user: `user:` takes an @mention, a UPN such as "
        "`alice@example.com` or a SID such as `S-1-5-21-…`."
    )


def _device(p: Parser, word: Word, rest: Word) -> DeviceTarget:
    kinds = {m.kind for m in rest.markups}
    if kinds & {"user", "channel", "usergroup", "special"}:
        raise p.error(
            f"{quoted(word.text)} is not a device: `device:` takes a device name or a Collector UUID "
            "(people are targets with `user:`)."
        )
    markup = rest.only_markup
    text = markup.value if markup is not None and markup.kind == "email" else rest.text
    text = text.strip()
    if not text:
        raise p.error("`device:` needs a device name or a Collector UUID.")
    if is_uuid(text):
        return DeviceTarget("collector_uid", text.lower())
    if len(text) > MAX_DEVICE_NAME_LENGTH:
        raise p.error(
            f"The device name {quoted(text)} is {len(text):,} characters long; at most {MAX_DEVICE_NAME_LENGTH} are allowed."
        )
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise p.error(f"The device name {quoted(text)} contains a control character.")
    return DeviceTarget("name", text)
