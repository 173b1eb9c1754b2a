"""``nexthink-bot audit``: the audit trail kept in ``DATABASE_URL``, oldest first, as JSON lines
or CSV, streamed batch by batch (constant memory whatever the number of records).

Only ``DATABASE_URL`` is needed (no Slack or Nexthink settings). Every record is passed through
a redactor holding the configured secrets on the way out as well, although the writer
(``bot.audit.AuditTrail``) already redacted it. Exit status: 0 when the export finished (also
when nothing matched, or the reader closed the pipe), 2 for a bad argument or setting (one line
on stderr), 1 when the database cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import re
import sys
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, NoReturn

from bot.logging import Redactor
from bot.settings import Settings, SettingsError
from bot.store import AUDIT_FIELDS, AuditQuery, Store, StoreError
from bot.store.engine import driver_url

__all__ = ["add_audit_parser", "export", "parse_time", "run_audit"]

_DESCRIPTION = """\
Print the audit trail kept in DATABASE_URL, one record per event, oldest first.

Times: --since is inclusive, --until is exclusive (a record at exactly --until is not printed),
so consecutive windows (--since A --until B, then --since B) never repeat or miss a record.
Each takes a duration back from now (7d, 12h, 30m, 45s, 2w), a date (2026-12-01: midnight UTC)
or an ISO 8601 time (2026-12-01T08:00:00Z; without an offset it is UTC).

Fields (the CSV header and the JSON keys, in this order):
{fields}
`time` is ISO 8601 UTC; in CSV, lists and objects (targets, params, execution_uuids) are JSON
and an empty cell is null.
Exit status: 0 done, 1 the database cannot be read, 2 a bad argument or setting.
"""

_SECRET_WORDS = ("token", "secret", "passw", "auth", "cookie", "signature")
_DURATION = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class _OneLineParser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _parser(prog: str = "nexthink-bot audit") -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog=prog,
        description=_DESCRIPTION.format(
            fields=textwrap.fill(
                ", ".join(AUDIT_FIELDS), 96, initial_indent="  ", subsequent_indent="  "
            )
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--since", metavar="WHEN", help="first time included: 7d, 2026-12-01 or an ISO 8601 time"
    )
    parser.add_argument(
        "--until", metavar="WHEN", help="first time excluded (same forms; default: no end)"
    )
    parser.add_argument(
        "--format", choices=("jsonl", "csv"), default="jsonl", help="default: jsonl"
    )
    parser.add_argument(
        "--user", metavar="ID_OR_UPN", help="actor's Slack user id, or UPN (any case)"
    )
    parser.add_argument("--workflow", metavar="ID", help="workflow id, exactly")
    parser.add_argument("--ticket", metavar="REF", help="ticket reference, exactly")
    return parser


def add_audit_parser(sub: Any) -> None:
    """List ``audit`` among the commands of ``nexthink-bot --help``; ``run_audit`` parses it."""
    sub.add_parser("audit", help="print the audit trail (JSON lines or CSV)", add_help=False)


def parse_time(value: str, *, now: datetime | None = None) -> datetime:
    """``7d`` (back from ``now``), ``2026-12-01`` (midnight UTC) or ISO 8601 (naive = UTC)."""
    text = value.strip()
    match = _DURATION.match(text)
    if match:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a duration (7d, 12h, 30m), a date (2026-12-01) or an ISO 8601 "
            "time (2026-12-01T08:00:00Z)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _query(args: argparse.Namespace, now: datetime) -> AuditQuery:
    bounds: dict[str, datetime | None] = {}
    for name in ("since", "until"):
        raw = getattr(args, name)
        try:
            bounds[name] = None if raw is None else parse_time(raw, now=now)
        except ValueError as exc:
            raise _BadArgument(f"--{name}: {exc}") from None
    since, until = bounds["since"], bounds["until"]
    if since is not None and until is not None and since >= until:
        raise _BadArgument(
            f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})"
        )
    for name in ("user", "workflow", "ticket"):
        if getattr(args, name) is not None and not getattr(args, name).strip():
            raise _BadArgument(f"--{name} needs a value")
    return AuditQuery(
        since=since, until=until, user=args.user, workflow=args.workflow, ticket=args.ticket
    )


class _BadArgument(Exception):
    pass


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def export(
    store: Store,
    query: AuditQuery,
    out: IO[str],
    *,
    fmt: str = "jsonl",
    redact: Redactor | None = None,
    batch: int = 2000,
) -> int:
    """Write the matching records to ``out`` as ``fmt``; return how many were written."""
    redact = redact or Redactor()
    count = 0
    writer = csv.writer(out) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(AUDIT_FIELDS)
    async for record in store.iter_audit(query, batch=batch):
        fields = record.to_json()
        if writer is not None:
            cells = [_cell(fields[name]) for name in AUDIT_FIELDS]
            if _suspicious(redact, "\n".join(cells)):
                fields = redact.value(fields)
                cells = [_cell(fields[name]) for name in AUDIT_FIELDS]
            writer.writerow(cells)
        else:
            line = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
            if _suspicious(redact, line):
                line = json.dumps(redact.value(fields), ensure_ascii=False, separators=(",", ":"))
            out.write(line)
            out.write("\n")
        count += 1
    return count


def _suspicious(redact: Redactor, text: str) -> bool:
    """Whether a record's text may hold something to mask: a configured secret, a secret's shape
    or a secret-looking word (a key such as ``api_token``). Looking at the text at once costs a
    fraction of walking the record; a hit sends the record through the full redactor."""
    if redact.text(text) != text:
        return True
    lowered = text.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def run_audit(argv: Sequence[str], *, prog: str = "nexthink-bot audit") -> int:
    """Parse ``argv`` (the words after ``audit``), export to stdout; return the exit status."""
    args = _parser(prog).parse_args(list(argv))
    try:
        query = _query(args, datetime.now(UTC))
        settings = Settings.load("audit")
        _existing_database(settings.database_url)
    except (_BadArgument, SettingsError) as exc:
        print(f"{prog}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(settings, query, args.format, prog))
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        _quiet_stdout()
        return 0


def _existing_database(database_url: str) -> None:
    """A SQLite file that does not exist is a wrong DATABASE_URL, not an empty trail: opening it
    would create an empty database and print nothing."""
    try:
        url = driver_url(database_url)
    except StoreError as exc:
        raise SettingsError(str(exc)) from None
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise SettingsError(f"DATABASE_URL: there is no SQLite database at {url.database!r}")


async def _run(settings: Settings, query: AuditQuery, fmt: str, prog: str) -> int:
    try:
        store = await Store.open(settings.database_url)
    except StoreError as exc:
        print(f"{prog}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    try:
        await export(store, query, sys.stdout, fmt=fmt, redact=Redactor(settings.secrets()))
        sys.stdout.flush()
    except StoreError as exc:
        print(f"{prog}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    return 0


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush is quiet."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
