"""A command's text cut into words, with quoting: the tokenizer.

Words are separated by whitespace. A quote opens a quoted section only at the start of a word,
right after ``=`` or ``:``, or right after another quoted section; elsewhere (``don't``,
``O'Brien``) it is an ordinary character. ``"`` and the typographic ``“ ” „`` are one kind of
quote, ``'`` and ``‘ ’`` the other; a section ends at a quote of its own kind. Inside a section: a
doubled quote is one literal quote (``'it''s'`` is ``it's``, as in SQL and CSV), a backslash before
a quote or a backslash is that character (``"say \\"hi\\""``), and any other backslash is kept
(``"C:\\temp"``). Outside quotes a backslash is an ordinary character. Sections join with the
unquoted text around them (``note="disk full"`` is one word). A section that never ends is an error.

Each ``Word`` remembers which characters were quoted, so that quoted text stays literal: a quoted
``=`` does not split a ``key=value`` and a quoted ``user:`` is no prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from handlers.grammar.errors import GrammarError, quoted
from handlers.grammar.markup import Markup, units
from handlers.grammar.usage import guess_subcommand, usage

__all__ = ["Word", "tokenize"]

_DOUBLE = frozenset('"“”„‟＂')
_SINGLE = frozenset("'‘’‚‛")
_QUOTES = _DOUBLE | _SINGLE


@dataclass
class Word:
    #: characters with whether they were quoted, and markup pieces
    items: list[tuple[str, bool] | Markup] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(i.text if isinstance(i, Markup) else i[0] for i in self.items)

    @property
    def markups(self) -> list[Markup]:
        return [i for i in self.items if isinstance(i, Markup)]

    @property
    def only_markup(self) -> Markup | None:
        """The markup piece that is the whole word, if it is."""
        if len(self.items) == 1 and isinstance(self.items[0], Markup):
            return self.items[0]
        return None

    def split(self, sep: str) -> tuple[Word, Word] | None:
        """The parts before and after the first unquoted ``sep``."""
        for index, item in enumerate(self.items):
            if item == (sep, False):
                return Word(self.items[:index]), Word(self.items[index + 1 :])
        return None

    def prefix(self, prefixes: Sequence[str]) -> tuple[str, Word] | None:
        """The unquoted prefix (any case) the word starts with, and the rest."""
        for prefix in prefixes:
            head = self.items[: len(prefix)]
            if len(head) == len(prefix) and all(
                isinstance(item, tuple) and not item[1] and item[0].casefold() == want
                for item, want in zip(head, prefix, strict=True)
            ):
                return prefix, Word(self.items[len(prefix) :])
        return None


def tokenize(text: str) -> list[Word]:
    pieces = units(text)
    words: list[Word] = []
    word: Word | None = None
    quote: frozenset[str] | None = None
    quote_at = 0
    can_open = True
    i, n = 0, len(pieces)
    while i < n:
        unit = pieces[i]
        after = pieces[i + 1] if i + 1 < n else None
        if word is None and not (isinstance(unit, str) and unit.isspace()):
            word = Word()
            words.append(word)
        if isinstance(unit, Markup):
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
        seen = "".join(u.text if isinstance(u, Markup) else u for u in pieces[quote_at:])
        raise GrammarError(
            f"The quote at {quoted(seen)} is never closed: end the value with a matching quote.",
            usage(guess_subcommand(text)),
            guess_subcommand(text),
        )
    return words
