"""The text of a ``/nexthink`` command, turned into a typed ``Command``.

``parse(text)`` returns one of ``OpenModal``, ``Help``, ``ListWorkflows``, ``Info``, ``Run``,
``Resume``, ``History``, or raises ``GrammarError`` (and nothing else, whatever the input) whose
``problem`` says what is wrong, quoting the offending word, and whose ``usage`` shows the right form.
Both are Slack mrkdwn, ready to post: text that came from the user is escaped and put in backticks.

How the text is read, in order:

1. **Slack's markup.** With "escape channels, users, and links" on (the manifest's
   ``should_escape: true``) Slack sends ``<@U123|name>`` for a mention, ``<#C123|name>`` for a
   channel, ``<!subteam^S123|@team>`` for a user group, ``<mailto:a@b.c|a@b.c>`` and
   ``<http://host|host>`` for what it auto-linked. Each is one indivisible piece of a word: a mention
   is a user id, a mailto link its address, another link its label (what the person typed) or else
   its address. Then ``&amp;`` ``&lt;`` ``&gt;`` are decoded, so a typed ``<`` never starts markup.
   Zero-width spaces are dropped; non-breaking spaces are spaces.
2. **Words** are separated by whitespace. A quote opens a quoted section only at the start of a
   word, right after ``=`` or ``:``, or right after another quoted section; elsewhere (``don't``,
   ``O'Brien``) it is an ordinary character. ``"`` and the typographic ``“ ” „`` are one kind of
   quote, ``'`` and ``‘ ’`` the other; a section ends at a quote of its own kind. Inside a section:
   a doubled quote is one literal quote (``'it''s'`` is ``it's``, as in SQL and CSV), a backslash
   before a quote or a backslash is that character (``"say \\"hi\\""``), and any other backslash is
   kept (``"C:\\temp"``). Outside quotes a backslash is an ordinary character. Sections join with
   the unquoted text around them (``note="disk full"`` is one word). A section that never ends is an
   error.
3. **Meaning.** The first word is the subcommand (any case). Quoted text is literal: a quoted ``=``
   does not make a ``key=value`` and a quoted ``user:`` is not a target. Word by word, a ``user:`` or
   ``device:`` prefix (any case) makes a target, a bare mention is a user target, ``key=value``
   splits at the first unquoted ``=``.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from bot.nexthink.models import is_sid, is_upn, is_uuid

__all__ = [
    "HELP",
    "MAX_TARGETS",
    "MAX_VALUE_LENGTH",
    "PARAM_NAME_PATTERN",
    "SUBCOMMANDS",
    "Command",
    "DeviceTarget",
    "GrammarError",
    "Help",
    "History",
    "Info",
    "ListWorkflows",
    "OpenModal",
    "Resume",
    "Run",
    "UserTarget",
    "parse",
    "usage",
]

SUBCOMMANDS = ("run", "list", "info", "resume", "history", "help")
#: targets (``user:`` and ``device:`` together) one command may name
MAX_TARGETS = 1_000
#: characters in one parameter value, target or filter
MAX_VALUE_LENGTH = 1_000
MAX_DEVICE_NAME_LENGTH = 255
MAX_WORKFLOW_LENGTH = 255
PARAM_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"

# -- the commands --------------------------------------------------------------------------

Params: TypeAlias = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class OpenModal:
    """Empty text: open the run modal."""


@dataclass(frozen=True)
class Help:
    topic: str | None = None  #: a subcommand name, lower case


@dataclass(frozen=True)
class ListWorkflows:
    filter: str | None = None


@dataclass(frozen=True)
class Info:
    workflow: str  #: as typed (an NQL id or an alias), without a leading ``#``


@dataclass(frozen=True)
class UserTarget:
    kind: Literal["mention", "upn", "sid"]
    value: str  #: a Slack user id for a mention


@dataclass(frozen=True)
class DeviceTarget:
    kind: Literal["collector_uid", "name"]
    value: str  #: a collectorUid is lower case


@dataclass(frozen=True)
class Run:
    workflow: str
    users: tuple[UserTarget, ...] = ()
    devices: tuple[DeviceTarget, ...] = ()
    params: Params = ()  #: in the order typed; names are unique
    visible: bool = False  #: the word ``visible``: post the run in the channel, with a thread

    @property
    def params_dict(self) -> dict[str, str]:
        return dict(self.params)

    @property
    def has_targets(self) -> bool:
        return bool(self.users or self.devices)


@dataclass(frozen=True)
class Resume:
    workflow_uuid: str  #: lower case
    execution_uuid: str  #: lower case
    params: Params = ()

    @property
    def params_dict(self) -> dict[str, str]:
        return dict(self.params)


@dataclass(frozen=True)
class History:
    """The caller's recent requests."""


Command: TypeAlias = OpenModal | Help | ListWorkflows | Info | Run | Resume | History


class GrammarError(Exception):
    """The command text cannot be understood; nothing should be sent anywhere."""

    def __init__(self, problem: str, usage: str, subcommand: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem  #: mrkdwn: what is wrong, quoting the offending word
        self.usage = usage  #: mrkdwn: the right form of the subcommand, with an example
        self.subcommand = subcommand


# -- usage and help --------------------------------------------------------------------------

_FORMS: dict[str, tuple[str, str, str]] = {
    # name: (form, example, what it does)
    "run": (
        "/nexthink run WORKFLOW [device:NAME|UUID]… [user:@person|UPN|SID]… [name=value]… [visible]",
        '/nexthink run clear_disk_space device:LAPTOP-42 note="disk full"',
        "run a workflow; with no `device:` or `user:` it runs for you (Nexthink picks your most recent device); "
        "`visible` posts it in the channel, where its thread follows the outcome",
    ),
    "list": (
        "/nexthink list [filter]",
        "/nexthink list teams",
        "the workflows you may run, optionally only those whose id, alias or name contains the filter",
    ),
    "info": (
        "/nexthink info WORKFLOW",
        "/nexthink info restart_teams",
        "one workflow's details",
    ),
    "resume": (
        "/nexthink resume WORKFLOW_UUID EXECUTION_UUID [name=value]…",
        "/nexthink resume 3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a fecab46b-ee58-b8bc-b61e-912a2dc2bcbc decision=approved",
        "resume an execution that waits for an event",
    ),
    "history": ("/nexthink history", "/nexthink history", "your recent requests and their ids"),
    "help": ("/nexthink help [subcommand]", "/nexthink help run", "this help, or one subcommand's"),
}


def usage(sub: str | None = None) -> str:
    """The right form of ``sub`` with an example (mrkdwn); every form when ``sub`` is unknown."""
    form = _FORMS.get((sub or "").casefold())
    if form is None:
        lines = "\n".join(f"• `{f}`" for f, _, _ in _FORMS.values())
        return f"Usage:\n• `/nexthink` (opens the run form)\n{lines}"
    return f"Usage: `{form[0]}`\nExample: `{form[1]}`"


HELP = "\n".join(
    [
        "*`/nexthink` runs Nexthink workflows from Slack.*",
        "• `/nexthink`: open the run form",
        *(f"• `{form}`: {what}\n    e.g. `{example}`" for form, example, what in _FORMS.values()),
        "*Targets:* `device:` takes a device name or its Collector UUID; `user:` takes an @mention, "
        "a UPN (`alice@example.com`) or a SID (`S-1-5-21-…`). Repeat them for several targets.",
        "*Values with spaces* are quoted: `note=\"disk full\"` or `note='disk full'`. Inside quotes, "
        "write a quote as `\\\"` or by doubling it (`'it''s'`), and a backslash as `\\\\`.",
        "`WORKFLOW` is an id shown by `/nexthink list` or an alias set by your administrators.",
    ]
)

# -- reading the text ----------------------------------------------------------------------------

_DOUBLE = frozenset('"“”„‟＂')
_SINGLE = frozenset("'‘’‚‛")
_QUOTES = _DOUBLE | _SINGLE
_SPACES = {"\u00a0": " ", "\u2007": " ", "\u202f": " "}
_INVISIBLE = frozenset("\u200b\u2060\ufeff")
_ENTITY = re.compile(r"&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}
_MARKUP = re.compile(r"<([^<>\s][^<>]*)>")
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{1,31}$")
_PARAM_NAME = re.compile(PARAM_NAME_PATTERN)
_TARGET_PREFIXES = ("user:", "device:")
#: the unquoted word that makes a run visible in the channel (Slack may turn ``--`` into a dash)
_VISIBLE_WORDS = frozenset({"visible", "--visible", "—visible", "–visible"})

MarkupKind: TypeAlias = Literal["user", "channel", "usergroup", "special", "email", "link"]


def _decode(text: str) -> str:
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], text)


@dataclass(frozen=True)
class _Markup:
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


def _markup(inner: str) -> _Markup:
    body, _, raw_label = inner.partition("|")
    label = _decode(raw_label) or None
    if body.startswith("@"):
        return _Markup("user", body[1:], label)
    if body.startswith("#"):
        return _Markup("channel", body[1:], label)
    if body.startswith("!subteam^"):
        return _Markup("usergroup", body[len("!subteam^") :], label)
    if body.startswith("!"):
        return _Markup("special", body[1:].partition("^")[0], label)
    if body[:7].casefold() == "mailto:":
        return _Markup("email", _decode(body[7:]).partition("?")[0], label)
    return _Markup("link", _decode(body), label)


def _units(text: str) -> list[str | _Markup]:
    """Slack markup first, then entities: one character (or one markup piece) per unit."""
    units: list[str | _Markup] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "<" and (m := _MARKUP.match(text, i)):
            units.append(_markup(m.group(1)))
            i = m.end()
        elif char == "&" and (m := _ENTITY.match(text, i)):
            units.append(_ENTITIES[m.group(1)])
            i = m.end()
        else:
            if char not in _INVISIBLE:
                units.append(_SPACES.get(char, char))
            i += 1
    return units


@dataclass
class _Word:
    #: characters with whether they were quoted, and markup pieces
    items: list[tuple[str, bool] | _Markup] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(i.text if isinstance(i, _Markup) else i[0] for i in self.items)

    @property
    def markups(self) -> list[_Markup]:
        return [i for i in self.items if isinstance(i, _Markup)]

    @property
    def only_markup(self) -> _Markup | None:
        """The markup piece that is the whole word, if it is."""
        if len(self.items) == 1 and isinstance(self.items[0], _Markup):
            return self.items[0]
        return None

    def split(self, sep: str) -> tuple[_Word, _Word] | None:
        """The parts before and after the first unquoted ``sep``."""
        for index, item in enumerate(self.items):
            if item == (sep, False):
                return _Word(self.items[:index]), _Word(self.items[index + 1 :])
        return None

    def prefix(self, prefixes: Sequence[str]) -> tuple[str, _Word] | None:
        """The unquoted prefix (any case) the word starts with, and the rest."""
        for prefix in prefixes:
            head = self.items[: len(prefix)]
            if len(head) == len(prefix) and all(
                isinstance(item, tuple) and not item[1] and item[0].casefold() == want
                for item, want in zip(head, prefix, strict=True)
            ):
                return prefix, _Word(self.items[len(prefix) :])
        return None


def _tokenize(text: str) -> list[_Word]:
    units = _units(text)
    words: list[_Word] = []
    word: _Word | None = None
    quote: frozenset[str] | None = None
    quote_at = 0
    can_open = True
    i, n = 0, len(units)
    while i < n:
        unit = units[i]
        after = units[i + 1] if i + 1 < n else None
        if word is None and not (isinstance(unit, str) and unit.isspace()):
            word = _Word()
            words.append(word)
        if isinstance(unit, _Markup):
            assert word is not None
            word.items.append(unit)
            can_open = False
        elif quote is not None:
            assert word is not None
            if unit == "\\" and isinstance(after, str) and (after == "\\" or after in _QUOTES):
                word.items.append((after, True))
                i += 1
            elif unit in quote:
                if isinstance(after, str) and after in quote:
                    word.items.append((unit, True))
                    i += 1
                else:
                    quote = None
                    can_open = True
            else:
                word.items.append((unit, True))
        elif unit.isspace():
            word = None
            can_open = True
        elif can_open and unit in _QUOTES:
            quote = _DOUBLE if unit in _DOUBLE else _SINGLE
            quote_at = i
        else:
            assert word is not None
            word.items.append((unit, False))
            can_open = unit in "=:"
        i += 1
    if quote is not None:
        seen = "".join(u.text if isinstance(u, _Markup) else u for u in units[quote_at:])
        raise GrammarError(
            f"The quote at {_q(seen)} is never closed: end the value with a matching quote.",
            usage(_guess_subcommand(text)),
            _guess_subcommand(text),
        )
    return words


def _guess_subcommand(text: str) -> str | None:
    head = text.split(maxsplit=1)
    name = head[0].casefold() if head else ""
    return name if name in _FORMS else None


def _q(text: str, limit: int = 60) -> str:
    """User text inside a mrkdwn message: clipped, escaped, in backticks."""
    text = text.replace("`", "'").replace("\n", " ")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"`{text}`" if text.strip() else "`(empty)`"


# -- giving the words their meaning ------------------------------------------------------------


class _Parser:
    def __init__(self, sub: str) -> None:
        self.sub = sub

    def error(self, problem: str) -> GrammarError:
        return GrammarError(problem, usage(self.sub), self.sub)

    def no_more(self, extra: Sequence[_Word], what: str) -> None:
        if not extra:
            return
        words = ", ".join(_q(w.text) for w in extra[:5]) + (", …" if len(extra) > 5 else "")
        hint = _hint(extra[0])
        raise self.error(
            f"Unexpected {words}: {what}." + (f" Did you mean {hint}?" if hint else "")
        )

    def workflow(self, word: _Word) -> str:
        if word.prefix(_TARGET_PREFIXES) or word.split("="):
            raise self.error(
                f"`{self.sub}` needs the workflow first (an id from `/nexthink list`), not {_q(word.text)}."
            )
        markup = word.only_markup
        if markup is not None and markup.kind == "channel" and markup.label:
            name = markup.label  # `#restart_teams` turned into a channel link by Slack
        elif markup is not None and markup.kind in {"user", "usergroup", "special", "channel"}:
            raise self.error(
                f"{_q(markup.text)} is not a workflow: write its id, as `/nexthink list` shows it."
            )
        else:
            name = word.text
        name = name.removeprefix("#")
        if not name:
            raise self.error(f"`{self.sub}` needs a workflow id, and {_q(word.text)} is empty.")
        if len(name) > MAX_WORKFLOW_LENGTH:
            raise self.error(
                f"The workflow {_q(name)} is {len(name):,} characters long; ids have at most {MAX_WORKFLOW_LENGTH}."
            )
        if any(c.isspace() or unicodedata.category(c) == "Cc" for c in name):
            raise self.error(
                f"The workflow {_q(name)} contains spaces or control characters; ids have none."
            )
        return name

    def param(self, key: _Word, value: _Word, params: dict[str, str]) -> None:
        name, text = key.text, value.text
        if not name:
            raise self.error(
                f"{_q('=' + text)} has no parameter name: write `name=value`, e.g. `mode=soft`."
            )
        if not _PARAM_NAME.match(name):
            raise self.error(
                f"{_q(name)} is not a valid parameter name: a name starts with a letter or `_` and "
                "has at most 64 letters, digits, `_`, `.` or `-`."
            )
        if name in params:
            raise self.error(f"The parameter {_q(name)} is given twice; give it once.")
        if not text:
            raise self.error(
                f"The parameter {_q(name)} has no value: Nexthink needs a non-empty value for every "
                f'parameter (quote values with spaces: `{name}="a value"`).'
            )
        if len(text) > MAX_VALUE_LENGTH:
            raise self.error(
                f"The value of {_q(name)} is {len(text):,} characters long; at most {MAX_VALUE_LENGTH:,} are allowed."
            )
        params[name] = text

    def target(self, word: _Word) -> UserTarget | DeviceTarget | None:
        """The target the word names, ``None`` if it is not a target."""
        found = word.prefix(_TARGET_PREFIXES)
        if found is None:
            markup = word.only_markup
            if markup is not None and markup.kind == "user":
                return self.user(word, word)
            if markup is not None and markup.kind in {"channel", "usergroup", "special"}:
                return self.user(word, word)  # refused there, with the reason
            return None
        prefix, rest = found
        return self.user(word, rest) if prefix == "user:" else self.device(word, rest)

    def user(self, word: _Word, rest: _Word) -> UserTarget:
        kinds = {m.kind for m in rest.markups}
        markup = rest.only_markup
        if "channel" in kinds:
            raise self.error(
                f"{_q(word.text)} is a channel, and a channel cannot be a target: name people with "
                "`user:@person` or devices with `device:NAME`."
            )
        if kinds & {"usergroup", "special"}:
            raise self.error(
                f"{_q(word.text)} is a group, and groups cannot be targets: mention people one by one."
            )
        if markup is not None and markup.kind == "user":
            if not _SLACK_USER_ID.match(markup.value):
                raise self.error(f"{_q(word.text)} is not a mention of a Slack user.")
            return UserTarget("mention", markup.value)
        text = markup.value if markup is not None and markup.kind == "email" else rest.text
        text = text.strip()
        if not text:
            raise self.error(
                "`user:` needs a person: an @mention, a UPN such as `alice@example.com` or a SID."
            )
        if len(text) > MAX_VALUE_LENGTH:
            raise self.error(
                f"The user {_q(text)} is {len(text):,} characters long; at most {MAX_VALUE_LENGTH:,} are allowed."
            )
        if is_upn(text):
            return UserTarget("upn", text)
        if text[:2].casefold() == "s-" and is_sid("S" + text[1:]):
            return UserTarget("sid", "S" + text[1:])
        if text.startswith("@") and not kinds:
            raise self.error(
                f"{_q(text)} is plain text, not a mention: pick the person from Slack's list as you "
                "type their name, or give their UPN (`user:alice@example.com`)."
            )
        raise self.error(
            f"{_q(word.text)} names no user: `user:` takes an @mention, a UPN such as "
            "`alice@example.com` or a SID such as `S-1-5-21-…`."
        )

    def device(self, word: _Word, rest: _Word) -> DeviceTarget:
        kinds = {m.kind for m in rest.markups}
        if kinds & {"user", "channel", "usergroup", "special"}:
            raise self.error(
                f"{_q(word.text)} is not a device: `device:` takes a device name or a Collector UUID "
                "(people are targets with `user:`)."
            )
        markup = rest.only_markup
        text = markup.value if markup is not None and markup.kind == "email" else rest.text
        text = text.strip()
        if not text:
            raise self.error("`device:` needs a device name or a Collector UUID.")
        if is_uuid(text):
            return DeviceTarget("collector_uid", text.lower())
        if len(text) > MAX_DEVICE_NAME_LENGTH:
            raise self.error(
                f"The device name {_q(text)} is {len(text):,} characters long; at most {MAX_DEVICE_NAME_LENGTH} are allowed."
            )
        if any(unicodedata.category(c) == "Cc" for c in text):
            raise self.error(f"The device name {_q(text)} contains a control character.")
        return DeviceTarget("name", text)


def _hint(word: _Word) -> str | None:
    """A likely fix for a word that was not understood."""
    text = word.text
    if is_upn(text) or (word.only_markup is not None and word.only_markup.kind == "email"):
        return _q(f"user:{text}")
    if is_uuid(text):
        return _q(f"device:{text}")
    head, colon, rest = text.partition(":")
    if colon:
        close = difflib.get_close_matches(head.casefold(), ["user", "device"], n=1, cutoff=0.5)
        if close:
            return _q(f"{close[0]}:{rest}")
    return None


def _parse_help(p: _Parser, words: list[_Word]) -> Command:
    if not words:
        return Help()
    p.no_more(words[1:], "`help` takes at most one subcommand")
    topic = words[0].text.casefold()
    if topic not in _FORMS:
        close = difflib.get_close_matches(topic, SUBCOMMANDS, n=1)
        maybe = f" Did you mean `{close[0]}`?" if close else ""
        raise p.error(
            f"There is no help on {_q(words[0].text)}; the subcommands are "
            + ", ".join(f"`{s}`" for s in SUBCOMMANDS)
            + f".{maybe}"
        )
    return Help(topic)


def _parse_list(p: _Parser, words: list[_Word]) -> Command:
    text = " ".join(w.text for w in words).strip()
    if len(text) > MAX_VALUE_LENGTH:
        raise p.error(f"The filter is {len(text):,} characters long; at most {MAX_VALUE_LENGTH:,}.")
    return ListWorkflows(text or None)


def _parse_info(p: _Parser, words: list[_Word]) -> Command:
    if not words:
        raise p.error("`info` needs a workflow id, as `/nexthink list` shows it.")
    workflow = p.workflow(words[0])
    p.no_more(words[1:], "`info` takes one workflow")
    return Info(workflow)


def _parse_run(p: _Parser, words: list[_Word]) -> Command:
    if not words:
        raise p.error("`run` needs a workflow id, as `/nexthink list` shows it.")
    workflow = p.workflow(words[0])
    users: dict[UserTarget, None] = {}
    devices: dict[DeviceTarget, None] = {}
    params: dict[str, str] = {}
    extra: list[_Word] = []
    typed = 0
    visible = False
    for word in words[1:]:
        if _is_visible_word(word):
            visible = True
            continue
        target = p.target(word)
        if target is not None:
            typed += 1
            if typed > MAX_TARGETS:
                raise p.error(
                    f"Too many targets: at most {MAX_TARGETS:,} `device:` and `user:` in one command."
                )
            if isinstance(target, UserTarget):
                users[target] = None
            else:
                devices[target] = None
        elif (pair := word.split("=")) is not None:
            p.param(*pair, params)
        else:
            extra.append(word)
    p.no_more(
        extra, "`run` takes one workflow, then `device:`, `user:`, `name=value` and `visible` words"
    )
    return Run(workflow, tuple(users), tuple(devices), tuple(params.items()), visible)


def _is_visible_word(word: _Word) -> bool:
    unquoted = all(isinstance(i, tuple) and not i[1] for i in word.items)
    return unquoted and word.text.casefold() in _VISIBLE_WORDS


def _parse_resume(p: _Parser, words: list[_Word]) -> Command:
    ids: list[_Word] = []
    params: dict[str, str] = {}
    for word in words:
        if word.prefix(_TARGET_PREFIXES) or (word.markups and not word.split("=")):
            raise p.error(
                f"`resume` takes no targets ({_q(word.text)}): the paused execution already has one."
            )
        if (pair := word.split("=")) is not None:
            p.param(*pair, params)
        else:
            ids.append(word)
    if len(ids) < 2:
        raise p.error("`resume` needs the workflow UUID and then the execution UUID.")
    p.no_more(ids[2:], "`resume` takes two UUIDs, then `name=value` words")
    for word, what in zip(ids, ("a workflow", "an execution"), strict=False):
        if not is_uuid(word.text):
            raise p.error(
                f"{_q(word.text)} is not {what} UUID (one looks like `3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a`)."
            )
    return Resume(ids[0].text.lower(), ids[1].text.lower(), tuple(params.items()))


def _parse_history(p: _Parser, words: list[_Word]) -> Command:
    p.no_more(words, "`history` takes nothing more")
    return History()


_PARSERS: dict[str, Callable[[_Parser, list[_Word]], Command]] = {
    "help": _parse_help,
    "list": _parse_list,
    "info": _parse_info,
    "run": _parse_run,
    "resume": _parse_resume,
    "history": _parse_history,
}


def parse(text: str) -> Command:
    """Turn the text of a ``/nexthink`` command into a ``Command``; raise ``GrammarError`` if it is
    not one."""
    words = _tokenize(text)
    if not words:
        return OpenModal()
    head, rest = words[0], words[1:]
    sub = head.text.casefold()
    parser = _PARSERS.get(sub)
    if parser is None:
        close = difflib.get_close_matches(sub, SUBCOMMANDS, n=1)
        if close:
            hint = f" Did you mean `{close[0]}`?"
        elif head.text and not head.markups:
            hint = f" To run a workflow, write {_q('run ' + head.text)}."
        else:
            hint = ""
        raise GrammarError(
            f"Unknown subcommand {_q(head.text)}.{hint}", usage(None) + "\nMore: `/nexthink help`"
        )
    return parser(_Parser(sub), rest)
