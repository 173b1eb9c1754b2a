"""The reader each subcommand uses: its errors, the workflow word and ``name=value`` parameters.

A word the subcommand does not take is refused with a likely fix (``user:alice@example.com`` for a
bare UPN, ``device:…`` for a bare UUID, ``user:``/``device:`` for a misspelt prefix).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence

from bot.nexthink.models import is_upn, is_uuid
from bot.policy.tickets import MAX_TICKET_LENGTH
from handlers.grammar.commands import MAX_VALUE_LENGTH, MAX_WORKFLOW_LENGTH, PARAM_NAME_PATTERN
from handlers.grammar.errors import GrammarError, quoted
from handlers.grammar.usage import usage
from handlers.grammar.words import Word

__all__ = ["TARGET_PREFIXES", "TICKET_PREFIX", "Parser"]

TARGET_PREFIXES = ("user:", "device:")
TICKET_PREFIX = ("ticket:",)
_PARAM_NAME = re.compile(PARAM_NAME_PATTERN)


class Parser:
    """Reads the words of one subcommand; its errors carry that subcommand's usage."""

    def __init__(self, sub: str) -> None:
        self.sub = sub

    def error(self, problem: str) -> GrammarError:
        return GrammarError(problem, usage(self.sub), self.sub)

    def no_more(self, extra: Sequence[Word], what: str) -> None:
        if not extra:
            return
        words = ", ".join(quoted(w.text) for w in extra[:5]) + (", …" if len(extra) > 5 else "")
        hint = _hint(extra[0])
        raise self.error(
            f"Unexpected {words}: {what}." + (f" Did you mean {hint}?" if hint else "")
        )

    def workflow(self, word: Word) -> str:
        if word.prefix(TARGET_PREFIXES) or word.prefix(TICKET_PREFIX) or word.split("="):
            raise self.error(
                f"`{self.sub}` needs the workflow first (an id from `/nexthink list`), not {quoted(word.text)}."
            )
        markup = word.only_markup
        if markup is not None and markup.kind == "channel" and markup.label:
            name = markup.label  # `#restart_teams` turned into a channel link by Slack
        elif markup is not None and markup.kind in {"user", "usergroup", "special", "channel"}:
            raise self.error(
                f"{quoted(markup.text)} is not a workflow: write its id, as `/nexthink list` shows it."
            )
        else:
            name = word.text
        name = name.removeprefix("#")
        if not name:
            raise self.error(f"`{self.sub}` needs a workflow id, and {quoted(word.text)} is empty.")
        if len(name) > MAX_WORKFLOW_LENGTH:
            raise self.error(
                f"The workflow {quoted(name)} is {len(name):,} characters long; ids have at most {MAX_WORKFLOW_LENGTH}."
            )
        if any(c.isspace() or unicodedata.category(c) == "Cc" for c in name):
            raise self.error(
                f"The workflow {quoted(name)} contains spaces or control characters; ids have none."
            )
        return name

    def ticket(self, word: Word, before: str | None) -> str | None:
        """The reference of a ``ticket:<ref>`` word (quoted like any value), ``None`` if the word
        is not one; ``before`` is a ticket already given."""
        found = word.prefix(TICKET_PREFIX)
        if found is None:
            return None
        text = found[1].text.strip()
        if not text:
            raise self.error("`ticket:` needs a reference, such as `ticket:INC0012345`.")
        if before is not None:
            raise self.error("The ticket is given twice; give one `ticket:`.")
        if len(text) > MAX_TICKET_LENGTH:
            raise self.error(
                f"The ticket {quoted(text[:40] + '…')} is {len(text):,} characters long; at most "
                f"{MAX_TICKET_LENGTH} are allowed."
            )
        if any(unicodedata.category(c) == "Cc" for c in text):
            raise self.error(f"The ticket {quoted(text)} contains a control character.")
        return text

    def param(self, key: Word, value: Word, params: dict[str, str]) -> None:
        name, text = key.text, value.text
        if not name:
            raise self.error(
                f"{quoted('=' + text)} has no parameter name: write `name=value`, e.g. `mode=soft`."
            )
        if not _PARAM_NAME.match(name):
            raise self.error(
                f"{quoted(name)} is not a valid parameter name: a name starts with a letter or `_` and "
                "has at most 64 letters, digits, `_`, `.` or `-`."
            )
        if name in params:
            raise self.error(f"The parameter {quoted(name)} is given twice; give it once.")
        if not text:
            raise self.error(
                f"The parameter {quoted(name)} has no value: Nexthink needs a non-empty value for every "
                f'parameter (quote values with spaces: `{name}="a value"`).'
            )
        if len(text) > MAX_VALUE_LENGTH:
            raise self.error(
                f"The value of {quoted(name)} is {len(text):,} characters long; at most {MAX_VALUE_LENGTH:,} are allowed."
            )
        params[name] = text


def _hint(word: Word) -> str | None:
    """A likely fix for a word that was not understood."""
    text = word.text
    if is_upn(text) or (word.only_markup is not None and word.only_markup.kind == "email"):
        return quoted(f"user:{text}")
    if is_uuid(text):
        return quoted(f"device:{text}")
    head, colon, rest = text.partition(":")
    if colon:
        close = difflib.get_close_matches(
            head.casefold(), ["user", "device", "ticket"], n=1, cutoff=0.5
        )
        if close:
            return quoted(f"{close[0]}:{rest}")
    return None
