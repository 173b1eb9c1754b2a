"""A command that cannot be understood: ``GrammarError``, and how its message quotes the user's text."""

from __future__ import annotations

__all__ = ["GrammarError", "quoted"]


class GrammarError(Exception):
    """The command text cannot be understood; nothing should be sent anywhere."""

    def __init__(self, problem: str, usage: str, subcommand: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem  #: mrkdwn: what is wrong, quoting the offending word
        self.usage = usage  #: mrkdwn: the right form of the subcommand, with an example
        self.subcommand = subcommand


def quoted(text: str, limit: int = 60) -> str:
    """User text inside a mrkdwn message: clipped, escaped, in backticks."""
    text = text.replace("`", "'").replace("\n", " ")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"`{text}`" if text.strip() else "`(empty)`"
