"""Each subcommand's words turned into its ``Command``, and ``parse``, the entry point.

The first word is the subcommand (any case); ``run`` reads its targets, ``name=value`` parameters
(split at the first unquoted ``=``) and the word ``visible``; ``resume`` two UUIDs and parameters.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from datetime import date

from bot.nexthink.models import is_upn, is_uuid
from bot.schedule_times import When
from bot.targets import DeviceTarget, UserTarget
from handlers.grammar.commands import (
    MAX_TARGETS,
    MAX_VALUE_LENGTH,
    Cancel,
    Command,
    Delegate,
    Help,
    History,
    Info,
    ListWorkflows,
    OpenModal,
    Resume,
    Run,
    Scheduled,
)
from handlers.grammar.errors import GrammarError, quoted
from handlers.grammar.parser import TARGET_PREFIXES, Parser
from handlers.grammar.targets import read_target
from handlers.grammar.usage import FORMS, SUBCOMMANDS, usage
from handlers.grammar.when import is_when_word, read_when
from handlers.grammar.words import Word, tokenize

__all__ = ["parse"]

#: the unquoted word that makes a run visible in the channel (Slack may turn ``--`` into a dash)
_VISIBLE_WORDS = frozenset({"visible", "--visible", "—visible", "–visible"})


def _parse_help(p: Parser, words: list[Word]) -> Command:
    if not words:
        return Help()
    p.no_more(words[1:], "`help` takes at most one subcommand")
    topic = words[0].text.casefold()
    if topic not in FORMS:
        close = difflib.get_close_matches(topic, SUBCOMMANDS, n=1)
        maybe = f" Did you mean `{close[0]}`?" if close else ""
        raise p.error(
            f"There is no help on {quoted(words[0].text)}; the subcommands are "
            + ", ".join(f"`{s}`" for s in SUBCOMMANDS)
            + f".{maybe}"
        )
    return Help(topic)


def _parse_list(p: Parser, words: list[Word]) -> Command:
    text = " ".join(w.text for w in words).strip()
    if len(text) > MAX_VALUE_LENGTH:
        raise p.error(f"The filter is {len(text):,} characters long; at most {MAX_VALUE_LENGTH:,}.")
    return ListWorkflows(text or None)


def _parse_info(p: Parser, words: list[Word]) -> Command:
    if not words:
        raise p.error("`info` needs a workflow id, as `/nexthink list` shows it.")
    workflow = p.workflow(words[0])
    p.no_more(words[1:], "`info` takes one workflow")
    return Info(workflow)


def _parse_run(p: Parser, words: list[Word]) -> Command:
    if not words:
        raise p.error("`run` needs a workflow id, as `/nexthink list` shows it.")
    workflow = p.workflow(words[0])
    users: dict[UserTarget, None] = {}
    devices: dict[DeviceTarget, None] = {}
    params: dict[str, str] = {}
    extra: list[Word] = []
    typed = 0
    visible = False
    query: str | None = None
    when: When | None = None
    rest = words[1:]
    i = 0
    while i < len(rest):
        word = rest[i]
        i += 1
        if _is_visible_word(word):
            visible = True
            continue
        found = word.prefix(("query:",))
        if found is not None:
            if query is not None:
                raise p.error("`run` takes one `query:`; a second one was given.")
            query = _query_id(p, word, found[1])
            continue
        if is_when_word(word):
            if when is not None:
                raise p.error(
                    f"The run has two times ({quoted(when.text)} and {quoted(word.text + ' …')}): give one."
                )
            when, used = read_when(p, rest, i - 1)
            i += used
            continue
        target = read_target(p, word)
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
        extra,
        "`run` takes one workflow, then `device:`, `user:`, `name=value`, `visible` "
        "and `at …`/`in …` words",
    )
    if query is not None and (users or devices):
        raise p.error(
            "`query:` names the targets itself: leave out `device:` and `user:`, or run without `query:`."
        )
    if query is not None and when is not None:
        raise p.error(
            "A `query:` run starts only after you have seen its count and pressed Run: it cannot "
            "be scheduled with `at …`/`in …`."
        )
    return Run(workflow, tuple(users), tuple(devices), tuple(params.items()), visible, when, query)


_QUERY_ID = re.compile(r"^#[a-z0-9_]{2,255}$")


def _query_id(p: Parser, word: Word, rest: Word) -> str:
    """``query:#id``: the id of a query saved in Nexthink (``#`` optional; Slack may have turned
    ``#id`` into a channel link, whose name is then the id)."""
    markup = rest.only_markup
    if markup is not None and markup.kind == "channel" and markup.label:
        text = "#" + markup.label
    elif rest.markups:
        raise p.error(
            f"{quoted(word.text)} is not a query: `query:` takes the id of an NQL query saved in "
            "Nexthink, such as `query:#low_disk_devices`."
        )
    else:
        text = rest.text.strip()
    text = "#" + text.removeprefix("#")
    if not _QUERY_ID.match(text):
        raise p.error(
            f"{quoted(word.text)} names no saved query: an NQL query id is `#` and 2-255 lower-case "
            "letters, digits or `_`, such as `query:#low_disk_devices`."
        )
    return text


def _is_visible_word(word: Word) -> bool:
    unquoted = all(isinstance(i, tuple) and not i[1] for i in word.items)
    return unquoted and word.text.casefold() in _VISIBLE_WORDS


def _parse_resume(p: Parser, words: list[Word]) -> Command:
    ids: list[Word] = []
    params: dict[str, str] = {}
    for word in words:
        if word.prefix(TARGET_PREFIXES) or (word.markups and not word.split("=")):
            raise p.error(
                f"`resume` takes no targets ({quoted(word.text)}): the paused execution already has one."
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
                f"{quoted(word.text)} is not {what} UUID (one looks like `3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a`)."
            )
    return Resume(ids[0].text.lower(), ids[1].text.lower(), tuple(params.items()))


def _parse_history(p: Parser, words: list[Word]) -> Command:
    p.no_more(words, "`history` takes nothing more")
    return History()


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parse_delegate(p: Parser, words: list[Word]) -> Command:
    if not words:
        return Delegate("show")
    if len(words) == 1 and words[0].text.casefold() in {"off", "end", "stop", "none"}:
        return Delegate("off")
    head = words[0]
    target = read_target(p, head)
    if target is None and is_upn(head.text.strip()):
        target = UserTarget("upn", head.text.strip())
    if not isinstance(target, UserTarget) or target.kind == "sid":
        raise p.error(
            f"{quoted(head.text)} names no stand-in: give an @mention or a UPN "
            "(`alice@example.com`), or `off` to end your delegation."
        )
    until = None
    rest = words[1:]
    if rest:
        if rest[0].text.casefold() != "until" or len(rest) < 2:
            raise p.error("After the stand-in, write `until YYYY-MM-DD` or nothing.")
        day = rest[1].text
        try:
            until = date.fromisoformat(day) if _DATE.match(day) else None
        except ValueError:
            until = None
        if until is None:
            raise p.error(
                f"{quoted(day)} is not a date: write it as `YYYY-MM-DD`, e.g. `2026-12-24`."
            )
        p.no_more(rest[2:], "`delegate` takes a stand-in and `until YYYY-MM-DD`")
    return Delegate("set", target, until)


def _parse_scheduled(p: Parser, words: list[Word]) -> Command:
    if not words:
        return Scheduled()
    markup = words[0].only_markup
    if markup is None or markup.kind != "user" or not markup.value:
        raise p.error(
            f"`scheduled` takes nothing, or an @mention of someone (for auditors), not {quoted(words[0].text)}."
        )
    p.no_more(words[1:], "`scheduled` takes at most one @mention")
    return Scheduled(markup.value)


_SCHEDULE_ID = re.compile(r"^[A-Za-z0-9-]{4,36}$")


def _parse_cancel(p: Parser, words: list[Word]) -> Command:
    if not words:
        raise p.error(
            "`cancel` needs the id of a scheduled run, as `/nexthink scheduled` shows it."
        )
    p.no_more(words[1:], "`cancel` takes one scheduled run's id")
    text = words[0].text.strip("`")
    if not _SCHEDULE_ID.match(text):
        raise p.error(
            f"{quoted(words[0].text)} is not the id of a scheduled run: `/nexthink scheduled` shows them."
        )
    return Cancel(text)


_PARSERS: dict[str, Callable[[Parser, list[Word]], Command]] = {
    "help": _parse_help,
    "list": _parse_list,
    "info": _parse_info,
    "run": _parse_run,
    "resume": _parse_resume,
    "history": _parse_history,
    "delegate": _parse_delegate,
    "scheduled": _parse_scheduled,
    "cancel": _parse_cancel,
}


def parse(text: str) -> Command:
    """Turn the text of a ``/nexthink`` command into a ``Command``; raise ``GrammarError`` if it is
    not one."""
    words = tokenize(text)
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
            hint = f" To run a workflow, write {quoted('run ' + head.text)}."
        else:
            hint = ""
        raise GrammarError(
            f"Unknown subcommand {quoted(head.text)}.{hint}",
            usage(None) + "\nMore: `/nexthink help`",
        )
    return parser(Parser(sub), rest)
