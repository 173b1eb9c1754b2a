"""The sizes every path keeps to: the command, the run form, the Home tab, shortcuts, approvals,
``/nexthink resume`` (PRODUCT.md, "Trust at the seams": "Limits on every path").

``check`` is called by the core (``Runner.prepare``, the resume) before anything is looked up or
sent, so a refused request costs no Slack or Nexthink call. The grammar and the forms use the same
numbers to answer early; they are not the check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from bot.nexthink.models import MAX_TARGETS as NEXTHINK_MAX_TARGETS

__all__ = [
    "MAX_PARAMS",
    "MAX_TARGETS",
    "MAX_VALUE_LENGTH",
    "NEXTHINK_MAX_TARGETS",
    "PARAM_NAME",
    "LimitExceeded",
    "check",
]

#: targets (people and devices together) of one run: the bot's own limit, below Nexthink's
MAX_TARGETS = 1_000  # never more than NEXTHINK_MAX_TARGETS (10,000 per request)
#: parameters of one run or resume
MAX_PARAMS = 50
#: characters of one parameter value
MAX_VALUE_LENGTH = 1_000
#: a parameter name: a letter or ``_``, then letters, digits, ``_ . -`` (64 at most)
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


class LimitExceeded(Exception):
    """A request beyond a limit; ``str()`` tells the person which and how to stay within it;
    ``field`` is ``targets`` or ``params`` (for a form's inline error)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def check(*, targets: int = 0, params: Mapping[str, str] | None = None) -> None:
    """Raise ``LimitExceeded`` if ``targets`` or ``params`` are beyond the limits."""
    if targets > MAX_TARGETS:
        raise LimitExceeded(
            f"Too many targets: {targets:,}; one run may name at most {MAX_TARGETS:,} people and "
            "devices. Split it into several runs.",
            "targets",
        )
    params = params or {}
    if len(params) > MAX_PARAMS:
        raise LimitExceeded(
            f"Too many parameters: {len(params):,}; at most {MAX_PARAMS} per run.", "params"
        )
    for name, value in params.items():
        if not PARAM_NAME.match(name):
            raise LimitExceeded(
                "A parameter name must be a letter or `_`, then letters, digits, `_`, `.` or `-` "
                "(at most 64): one given is not.",
                "params",
            )
        if len(value) > MAX_VALUE_LENGTH:
            raise LimitExceeded(
                f"The value of `{name}` is {len(value):,} characters long; at most "
                f"{MAX_VALUE_LENGTH:,}.",
                "params",
            )
