"""structlog, configured once: JSON when stdout is not a terminal, colours when it is.

The stdlib loggers (``slack_bolt``, ``slack_sdk``, ``httpx``, ``aiohttp``) go through the same
processors, so every line, ours or a library's, passes the redactor. The redactor does not rely
on anyone remembering: it masks every configured secret value wherever it appears (however
short), every value under a secret-looking key (``response_url`` is one), also inside a JSON,
Python or form-encoded text such as Bolt's "Received message" debug line, and anything shaped
like a Slack token, a bearer credential or a Slack response URL (``hooks.slack.com`` and ``hooks.slack-gov.com``; plain, JSON-escaped
``https:\\/\\/…`` and percent-encoded ``https%3A%2F%2F…``).

``processors()``, ``structlog_processors()`` and ``formatter()`` are the one configuration:
``configure`` uses them for the process, and the test suite's secret scan for its capture.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

__all__ = [
    "ALREADY_REDACTED",
    "REDACTED",
    "Redactor",
    "configure",
    "configure_structlog",
    "formatter",
    "get_logger",
    "processors",
    "redactor",
    "structlog_processors",
]

REDACTED = "[redacted]"
#: a line's key naming the other keys whose values the process-wide redactor has already masked
#: (``bot.audit``: the audit record is redacted once, stored, then logged as it was stored); the
#: redactor leaves those values as they are and masks the rest of the line (context included)
ALREADY_REDACTED = "_already_redacted"

_SECRET_KEY = re.compile(
    r"(?i)(^|_|-)(token|secret|password|passwd|authorization|auth|cookie|signature|client_secret"
    r"|access_token|response_url)s?($|_|-)"
)
#: a slash as written plainly, JSON-escaped (``\/``, ``\\/``) or percent-encoded (``%2F``)
_SLASH = r"(?:/|\\+/|%2[Ff])"
_SECRET_SHAPES = re.compile(
    r"(xox[abposer]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+"
    r"|(?i:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"
    rf"|(?i:https?(?::|%3A){_SLASH}{{2}}hooks\.slack(?:-gov)?\.com){_SLASH}[^\s\"'<>&,]*"
    # a response URL by its path, whatever the host (a proxy, a local Slack):
    # .../commands/T0123/4567/AbC (an optional /hooks first)
    rf"|(?i:https?(?::|%3A){_SLASH}{{2}}(?:[^\s\"'<>&,/\\%]|%3A)+(?:{_SLASH}hooks)?)"
    rf"{_SLASH}(?:commands|actions){_SLASH}[A-Z0-9]+{_SLASH}\d+{_SLASH}[A-Za-z0-9]+)"
)
#: a secret-looking key's value written inside a text (a ``response_url`` is one: whoever holds it
#: can post as the bot for half an hour, wherever it points): ``"token": "…"`` (JSON, or JSON-escaped
#: ``\"token\":\"…\"``), ``'token': '…'`` (Python), ``token=…`` (a form or query string)
_KEY_WORDS = r"[A-Za-z_-]*(?:token|secret|password|passwd|signature|authorization|response_url)s?"
_QUOTED_KEY_VALUE = re.compile(
    rf"(?i)(?P<q>\\*[\"'])(?P<key>{_KEY_WORDS})(?P=q)(?P<sep>\s*:\s*)(?P=q).*?(?<!\\)(?P=q)"
)
_FORM_KEY_VALUE = re.compile(rf"(?i)(?P<lead>(?:^|[?&\s]){_KEY_WORDS}=)[^&\s\"']+")
#: what each of the three needs somewhere in a text (a quote, ``=``, or the start of a token, a
#: credential or a URL): a text without any is left as it is, after one search instead of three
_MAYBE_SHAPED = re.compile(r"[\"'=]|xox[abposer]-|xapp-|(?i:bearer|basic|http)")


class Redactor:
    """A structlog processor (and plain function) that masks secrets in any value."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if secret and secret not in self._secrets:  # however short: a secret is a secret
                self._secrets.append(secret)
        # longest first, so a secret that contains another is masked whole
        self._secrets.sort(key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        if _MAYBE_SHAPED.search(value) is None:  # none of the three patterns can match
            return value
        value = _QUOTED_KEY_VALUE.sub(_masked_value, value)
        value = _FORM_KEY_VALUE.sub(lambda m: m.group("lead") + REDACTED, value)
        return _SECRET_SHAPES.sub(REDACTED, value)

    def value(self, value: Any, depth: int = 0) -> Any:
        if depth > 6:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                k: (
                    REDACTED
                    if isinstance(k, str) and _SECRET_KEY.search(k) and v
                    else self.value(v, depth + 1)
                )
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return type(value)(self.value(v, depth + 1) for v in value)
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", "replace"))
        return value

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        done = event_dict.pop(ALREADY_REDACTED, None) or ()
        for key in list(event_dict):
            if key in done:
                continue
            item = event_dict[key]
            if key not in {"event", "exception"} and _SECRET_KEY.search(key) and item:
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self.value(item)
        return event_dict


def _masked_value(match: re.Match[str]) -> str:
    quote = match.group("q")
    return f"{quote}{match.group('key')}{quote}{match.group('sep')}{quote}{REDACTED}{quote}"


#: the process-wide redactor; ``configure`` adds the configured secrets to it
_redactor = Redactor()


def processors() -> list[Any]:
    """What every line goes through before it is rendered, ours or a library's: the redactor last."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.format_exc_info,
        _redactor,
    ]


def structlog_processors() -> list[Any]:
    """structlog's own chain: the level filter, ``processors()``, then hand-over to logging."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.filter_by_level,
        *processors()[1:],
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ]


def formatter(fmt: str = "json", *, colors: bool = False) -> logging.Formatter:
    """The formatter of every handler: a library's line through the shared processors (the
    redactor last), then the renderer. A structlog line arrives already redacted (the redactor
    is the last of ``structlog_processors()`` before the hand-over), so it is not masked twice:
    nothing between the two changes a value."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=colors)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )


def configure_structlog() -> None:
    """structlog's configuration (``configure`` calls it; so does the tests' secret scan)."""
    structlog.configure(
        processors=structlog_processors(),
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # the configuration never changes after start: bind each logger once, not on every line
        cache_logger_on_first_use=True,
    )


def configure(
    *, level: str = "INFO", fmt: str | None = None, secrets: Iterable[str] = (), stream: Any = None
) -> Redactor:
    """Set up structlog and the stdlib root logger; safe to call more than once."""
    stream = stream or sys.stdout
    tty = bool(getattr(stream, "isatty", lambda: False)())
    # no line shows where it was logged from, nor a thread's or process's name: don't look them
    # up for every record (the logging HOWTO's "Optimization": a stack walk per line otherwise)
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if fmt is None:
        fmt = "console" if tty else "json"
    _redactor.add(secrets)
    configure_structlog()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(fmt, colors=tty))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_nexthink_bot", False):
            root.removeHandler(old)
    handler._nexthink_bot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # libraries are chatty at INFO about every HTTP call; keep them one notch down unless DEBUG
    for name in ("httpx", "httpcore", "aiohttp.access", "slack_sdk", "slack_bolt", "asyncio"):
        logging.getLogger(name).setLevel(level if level == "DEBUG" else "WARNING")
    return _redactor


def redactor() -> Redactor:
    return _redactor


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
