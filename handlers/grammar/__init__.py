"""The text of a ``/nexthink`` command, turned into a typed ``Command``.

``parse(text)`` returns one of ``OpenModal``, ``Help``, ``ListWorkflows``, ``Info``, ``Run``,
``Resume``, ``History``, or raises ``GrammarError`` (and nothing else, whatever the input) whose
``problem`` says what is wrong, quoting the offending word, and whose ``usage`` shows the right form.
Both are Slack mrkdwn, ready to post: text that came from the user is escaped and put in backticks.

How the text is read, in order, one module each:

1. ``markup``: Slack's markup (``<@U123|name>``, ``<#C123|name>``, ``<!subteam^S123|@team>``,
   ``<mailto:…>``, ``<http://…>``) becomes indivisible pieces of a word, then ``&amp;`` ``&lt;``
   ``&gt;`` are decoded, so a typed ``<`` never starts markup.
2. ``words``: whitespace separates words; quotes (``"…"``, ``'…'`` and their typographic forms)
   make literal sections, joined with the unquoted text around them (``note="disk full"``).
3. ``subcommands``: the first word is the subcommand (any case); its words are read with the
   ``parser`` (workflow, ``key=value`` split at the first unquoted ``=``) and ``targets``
   (``user:``, ``device:``, a bare mention). Quoted text is literal: a quoted ``=`` does not make
   a ``key=value`` and a quoted ``user:`` is not a target.

``commands`` holds the typed results, ``usage`` the right forms and ``HELP``, ``errors`` the error.
The targets themselves are core values (``bot.targets``), re-exported here for the Slack layer.
"""

from __future__ import annotations

from bot.targets import DeviceTarget, UserTarget
from handlers.grammar.commands import (
    MAX_TARGETS,
    MAX_VALUE_LENGTH,
    PARAM_NAME_PATTERN,
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
from handlers.grammar.errors import GrammarError
from handlers.grammar.subcommands import parse
from handlers.grammar.usage import HELP, SUBCOMMANDS, usage

__all__ = [
    "HELP",
    "MAX_TARGETS",
    "MAX_VALUE_LENGTH",
    "PARAM_NAME_PATTERN",
    "SUBCOMMANDS",
    "Cancel",
    "Command",
    "Delegate",
    "DeviceTarget",
    "GrammarError",
    "Help",
    "History",
    "Info",
    "ListWorkflows",
    "OpenModal",
    "Resume",
    "Run",
    "Scheduled",
    "UserTarget",
    "parse",
    "usage",
]
