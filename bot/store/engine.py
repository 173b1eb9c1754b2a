"""From ``DATABASE_URL`` to a configured async engine, and driver errors to store errors.

* ``sqlite:///relative.db`` / ``sqlite:////abs/path.db`` -> ``sqlite+aiosqlite``. The file is
  put in WAL mode at open (``enable_wal``); each pooled connection gets ``busy_timeout`` and
  foreign keys; each statement is one hand-off to aiosqlite's thread (``sqlite_driver``). SQLAlchemy, not the ``sqlite3``
  module, emits BEGIN: ``BEGIN IMMEDIATE`` for writes, so a transaction that reads and then
  writes holds the write lock from its start and concurrent writers queue on ``busy_timeout``
  instead of failing with "database is locked"; plain ``BEGIN`` for the read-only engine.
* ``postgresql://`` / ``postgres://`` (any driver suffix) -> ``postgresql+asyncpg``, READ
  COMMITTED, pre-ping on checkout, optional ``search_path`` (``schema``). libpq's
  ``?sslmode=require`` becomes asyncpg's ``?ssl=require``.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from . import sqlite_driver
from .errors import StoreConfigError, StoreError, StoreUnavailable

__all__ = [
    "READ_ONLY",
    "create_engine",
    "describe_url",
    "driver_url",
    "enable_wal",
    "translate_errors",
]

#: execution option marking the read-only engine (plain deferred ``BEGIN`` on SQLite).
READ_ONLY = "nexthink_store_read_only"

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def driver_url(database_url: str) -> URL:
    """Map a ``DATABASE_URL`` to the async driver's URL; raise ``StoreConfigError`` if unusable."""
    try:
        url = make_url(database_url)
    except exc.ArgumentError:
        raise StoreConfigError(
            "DATABASE_URL must look like sqlite:///path.db or postgresql://user@host/db"
        ) from None
    backend = url.drivername.split("+", 1)[0]
    if backend == "sqlite":
        database = url.database or ""
        if database in {"", ":memory:"} or "mode=memory" in database:
            raise StoreConfigError(
                "DATABASE_URL: an in-memory SQLite database is not supported (each connection "
                "would see its own); use a file, e.g. sqlite:///./nexthink-bot.db"
            )
        directory = Path(database).parent
        if not directory.is_dir():
            raise StoreConfigError(
                f"DATABASE_URL: the directory {str(directory)!r} of the SQLite database "
                f"{database!r} does not exist; create it or choose another path"
            )
        return url.set(drivername="sqlite+aiosqlite")
    if backend in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+asyncpg")
        sslmode = url.query.get("sslmode")
        if isinstance(sslmode, str):  # libpq's spelling; asyncpg calls it ssl
            url = url.difference_update_query(["sslmode"]).update_query_dict({"ssl": sslmode})
        return url
    raise StoreConfigError(
        f"DATABASE_URL: unsupported database {backend!r}; use sqlite:///path.db or "
        "postgresql://user@host/db"
    )


def describe_url(url: URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    return url.render_as_string(hide_password=True)


def create_engine(
    url: URL,
    *,
    schema: str | None = None,
    pool_size: int = 5,
    max_overflow: int = 15,
    connect_timeout: float = 5.0,
    busy_timeout: float = 10.0,
    pool_timeout: float = 60.0,
) -> AsyncEngine:
    """An engine for ``url`` (as returned by ``driver_url``) configured as described above.

    ``pool_timeout`` is how long a task waits for a pooled connection: a burst of work (hundreds of
    runs at once on a busy machine) queues for the pool rather than failing; a database that is
    really gone fails sooner, on ``connect_timeout`` or ``busy_timeout``."""
    if url.get_backend_name() == "sqlite":
        if schema is not None:
            raise StoreConfigError("a schema can only be chosen for PostgreSQL, not SQLite")
        engine = create_async_engine(
            url,
            module=sqlite_driver.DBAPI,  # one hand-off to aiosqlite's thread per statement
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            connect_args={"isolation_level": None, "timeout": busy_timeout},
        )
        _configure_sqlite(engine, busy_timeout)
        return engine
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise StoreConfigError(f"schema name {schema!r} must match {_SCHEMA_NAME.pattern}")
    server_settings = {"application_name": "nexthink-bot"}
    if schema is not None:
        server_settings["search_path"] = schema
    connect_args: dict[str, Any] = {
        "timeout": connect_timeout,
        "command_timeout": max(30.0, busy_timeout),
        "server_settings": server_settings,
    }
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def _configure_sqlite(engine: AsyncEngine, busy_timeout: float) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


async def enable_wal(engine: AsyncEngine, busy_timeout: float) -> None:
    """Switch the SQLite file to WAL mode (persistent, so once per file is enough).

    Changing the journal mode needs the database to itself and SQLite answers "database is
    locked" at once, without waiting on ``busy_timeout``, when another process is opening the
    same new file; so this retries for up to ``busy_timeout``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + busy_timeout
    while True:
        try:
            async with engine.connect() as conn:
                # the driver's own connection: PRAGMA journal_mode must run outside a transaction
                driver: Any = (await conn.get_raw_connection()).driver_connection
                async with driver.execute("PRAGMA journal_mode = WAL") as cursor:
                    row = await cursor.fetchone()
            mode = str(row[0]).lower() if row else ""
            if mode != "wal":
                raise StoreConfigError(f"SQLite refused WAL mode (journal_mode is {mode!r})")
            return
        except (exc.OperationalError, sqlite3.OperationalError) as error:
            if "locked" not in str(error) or loop.time() >= deadline:
                raise
        await asyncio.sleep(0.02)


def _short(error: BaseException) -> str:
    inner = getattr(error, "orig", None) or error
    message = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    name = type(inner).__name__
    message = message[:300]
    return f"{name}: {message}" if message else name


@contextmanager
def translate_errors(where: str, *, everything_unavailable: bool = False) -> Iterator[None]:
    """Turn driver and connection errors into ``StoreUnavailable`` / ``StoreError``.

    ``where`` names the database (password hidden). With ``everything_unavailable`` (opening,
    pinging) any database error means "not usable"; otherwise only connection-level errors do,
    and the rest (a violated constraint, a bug in a query) are plain ``StoreError``.
    """
    try:
        yield
    except StoreError:
        raise
    except exc.DBAPIError as error:
        if (
            everything_unavailable
            or error.connection_invalidated
            or isinstance(error, exc.OperationalError | exc.InterfaceError)
        ):
            raise StoreUnavailable(f"database {where} is unavailable: {_short(error)}") from error
        raise StoreError(f"database {where} refused the operation: {_short(error)}") from error
    except (OSError, TimeoutError) as error:
        raise StoreUnavailable(f"database {where} is unreachable: {_short(error)}") from error
    except exc.SQLAlchemyError as error:
        if everything_unavailable:
            raise StoreUnavailable(f"database {where} is unavailable: {_short(error)}") from error
        raise
