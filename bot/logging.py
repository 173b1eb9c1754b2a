"""structlog, configured once: JSON when stdout is not a terminal, colours when it is.

The stdlib loggers (``slack_bolt``, ``slack_sdk``, ``httpx``, ``aiohttp``) go through the same
processors, so every line, ours or a library's, passes the redactor. The redactor does not rely
on anyone remembering: it masks every configured secret value wherever it appears, every value
under a secret-looking key, and anything shaped like a Slack token, a bearer credential or a
Slack ``response_url``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

__all__ = ["REDACTED", "Redactor", "configure", "get_logger"]

REDACTED = "[redacted]"

_SECRET_KEY = re.compile(
    r"(?i)(^|_|-)(token|secret|password|passwd|authorization|auth|cookie|signature|client_secret|access_token)s?($|_|-)"
)
_SECRET_SHAPES = re.compile(
    r"(xox[abposer]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+"
    r"|(?i:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|https://hooks\.slack\.com/\S+)"
)


class Redactor:
    """A structlog processor (and plain function) that masks secrets in any value."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if secret and len(secret) >= 4 and secret not in self._secrets:
                self._secrets.append(secret)
        # longest first, so a secret that contains another is masked whole
        self._secrets.sort(key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
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
        for key in list(event_dict):
            item = event_dict[key]
            if key not in {"event", "exception"} and _SECRET_KEY.search(key) and item:
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self.value(item)
        return event_dict


#: the process-wide redactor; ``configure`` adds the configured secrets to it
_redactor = Redactor()


def configure(
    *, level: str = "INFO", fmt: str | None = None, secrets: Iterable[str] = (), stream: Any = None
) -> Redactor:
    """Set up structlog and the stdlib root logger; safe to call more than once."""
    stream = stream or sys.stdout
    if fmt is None:
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    _redactor.add(secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.format_exc_info,
        _redactor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=getattr(stream, "isatty", lambda: False)())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            *shared[1:],
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _redactor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
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
