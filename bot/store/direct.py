"""The hot write transactions, compiled by SQLAlchemy once and sent on the driver's connection.

A run command writes two short transactions: its record with the ``run_requested`` event before
anything is sent, then Nexthink's answer with the ``executed`` event. Through SQLAlchemy's async
Core each statement costs a greenlet spawn, an execution context, a compiled-cache look-up and
per-parameter processing; on a 2-core machine that was about 1 ms of CPU per transaction, more
than SQLite takes to run it (``bench/end_to_end.py``). Here:

* ``Prepared`` is one statement compiled once per dialect by SQLAlchemy: its SQL, the order of
  its parameters, and SQLAlchemy's own conversion of each parameter (``bind_processor``) and of
  each returned column (``result_processor``). The rows written and read are those SQLAlchemy
  writes and reads (``tests/test_store_direct.py`` compares them, on both backends).
* ``transaction(conn)`` runs prepared statements in one transaction on a pooled connection's
  driver connection. On SQLite the statements queue until a returned row is needed, and each
  batch is one call on aiosqlite's thread, with ``BEGIN IMMEDIATE`` before the first and
  ``COMMIT`` after the last: a request and its event are one hand-off instead of four. On
  PostgreSQL it is asyncpg's own transaction (READ COMMITTED, the server's default, as the
  engine's).
* A driver error becomes the error SQLAlchemy would have raised (``DBAPIError``, with
  ``connection_invalidated`` and the pooled connection invalidated on a disconnect), so
  ``engine.translate_errors`` maps it to ``StoreUnavailable`` / ``StoreError`` as for every other
  statement.

``SQLAlchemyExecutor`` runs the same prepared statements through SQLAlchemy, for a transaction
that also carries other records' writes (``Write.apply`` takes a SQLAlchemy connection).

It uses what ``sqlite_driver`` uses of aiosqlite (``Connection._execute``, ``_conn``) and the
adapted connection's ``_handle_exception`` (SQLAlchemy's translation of the driver's errors):
private, so the versions in ``requirements/`` are the ones it is known to work with.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import UpdateBase

__all__ = ["Executor", "Prepared", "SQLAlchemyExecutor", "transaction"]

Params = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    binds: tuple[Callable[[Any], Any] | None, ...]
    #: the returned columns' names and result processors (empty without RETURNING)
    returns: tuple[tuple[str, Callable[[Any], Any] | None], ...]

    def args(self, params: Params) -> tuple[Any, ...]:
        return tuple(
            value if proc is None else proc(value)
            for value, proc in zip((params[n] for n in self.names), self.binds, strict=True)
        )

    def row(self, raw: Sequence[Any]) -> dict[str, Any]:
        return {
            name: value if proc is None else proc(value)
            for (name, proc), value in zip(self.returns, raw, strict=True)
        }


class Prepared:
    """One statement (or one per dialect: ``{"sqlite": …, "postgresql": …}``), compiled once
    for each dialect it runs on; ``columns``: an INSERT's columns, all of them given each time."""

    __slots__ = ("_columns", "_compiled", "_statements")

    def __init__(
        self, statement: UpdateBase | Mapping[str, UpdateBase], *, columns: Sequence[str] = ()
    ) -> None:
        self._statements = statement
        self._columns = list(columns) or None
        self._compiled: dict[str, _Compiled] = {}

    def statement(self, dialect: Dialect) -> UpdateBase:
        found = self._statements
        return found if isinstance(found, UpdateBase) else found[dialect.name]

    def compiled(self, dialect: Dialect) -> _Compiled:
        done = self._compiled.get(dialect.name)
        if done is None:
            done = self._compiled[dialect.name] = self._compile(dialect)
        return done

    def _compile(self, dialect: Dialect) -> _Compiled:
        statement = self.statement(dialect)
        compiled = statement.compile(dialect=dialect, column_keys=self._columns)
        names = compiled.positiontup
        if not compiled.positional or names is None:
            raise TypeError(f"{dialect.name}: expected a positional paramstyle")
        binds = tuple(
            compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names
        )
        returns = tuple(
            (str(c.key), c.type.dialect_impl(dialect).result_processor(dialect, None))
            for c in statement.exported_columns
        )
        return _Compiled(str(compiled), tuple(names), binds, returns)


class Executor(Protocol):
    """Prepared statements in one write transaction."""

    async def execute(self, prepared: Prepared, params: Params | Sequence[Params]) -> None:
        """Run ``prepared`` once, or once for each of a sequence of parameter sets."""

    async def returning(self, prepared: Prepared, params: Params) -> dict[str, Any] | None:
        """Run ``prepared`` (with RETURNING) and give its first row, or ``None``."""


class SQLAlchemyExecutor:
    """The prepared statements through SQLAlchemy, in ``conn``'s transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def execute(self, prepared: Prepared, params: Params | Sequence[Params]) -> None:
        values: dict[str, Any] | list[dict[str, Any]] = (
            dict(params) if isinstance(params, Mapping) else [dict(p) for p in params]
        )
        await self.conn.execute(prepared.statement(self.conn.dialect), values)

    async def returning(self, prepared: Prepared, params: Params) -> dict[str, Any] | None:
        result = await self.conn.execute(prepared.statement(self.conn.dialect), dict(params))
        row = result.mappings().first()
        return None if row is None else dict(row)


@asynccontextmanager
async def transaction(conn: AsyncConnection) -> AsyncIterator[Executor]:
    """One write transaction on ``conn``'s driver connection (``conn`` has no transaction of
    its own): committed when the block ends, rolled back if it raises."""
    pooled = await conn.get_raw_connection()
    adapted: Any = pooled.dbapi_connection
    dialect = conn.dialect
    tx: _SQLite | _Asyncpg
    if dialect.name == "sqlite":
        tx = _SQLite(pooled.driver_connection, dialect)
    else:
        tx = _Asyncpg(pooled.driver_connection, dialect)
    try:
        try:
            yield tx
            await tx.commit()
        except BaseException:
            await tx.rollback()
            raise
    except Exception as error:
        wrapped = _as_sqlalchemy(error, adapted, dialect, tx.last_sql)
        if wrapped is None:
            raise
        if wrapped.connection_invalidated:
            await conn.invalidate(wrapped)
        raise wrapped from error


def _as_sqlalchemy(
    error: Exception, adapted: Any, dialect: Dialect, sql: str | None
) -> exc.DBAPIError | None:
    """The ``DBAPIError`` SQLAlchemy would have raised for a driver's ``error`` (None: not a
    driver's error)."""
    if isinstance(error, exc.SQLAlchemyError):
        return None
    dbapi: Any = dialect.loaded_dbapi
    try:
        adapted._handle_exception(error)  # raises the DB-API's error for the driver's
    except dbapi.Error as translated:
        invalidated = dialect.is_disconnect(translated, adapted, None)
        wrapped: exc.DBAPIError = exc.DBAPIError.instance(
            sql, None, translated, dbapi.Error, connection_invalidated=invalidated, dialect=dialect
        )
        return wrapped
    except Exception:
        return None
    return None


_Step = tuple[str, Any, bool]  # SQL, its arguments (a list of them: many), many


def _on_sqlite_thread(
    conn: sqlite3.Connection, begin: bool, steps: list[_Step], commit: bool
) -> list[Any]:
    """On aiosqlite's thread: BEGIN IMMEDIATE if not yet sent, the steps, COMMIT if asked;
    the last step's rows. A failure rolls the transaction back here, in the same call."""
    try:
        if begin:
            conn.execute("BEGIN IMMEDIATE")
        rows: list[Any] = []
        for sql, args, many in steps:
            if many:
                conn.executemany(sql, args)
                rows = []
            else:
                cursor = conn.execute(sql, args)
                try:
                    rows = cursor.fetchall() if cursor.description else []
                finally:
                    cursor.close()
        if commit:
            conn.execute("COMMIT")
        return rows
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


class _SQLite:
    """Statements queued until a row is needed or the transaction ends, then one hand-off."""

    def __init__(self, driver: Any, dialect: Dialect) -> None:
        self._driver = driver  # an aiosqlite.Connection
        self._dialect = dialect
        self._queued: list[_Step] = []
        self._begun = False
        self._done = False
        self.last_sql: str | None = None

    def _queue(self, prepared: Prepared, params: Params | Sequence[Params]) -> _Compiled:
        compiled = prepared.compiled(self._dialect)
        if isinstance(params, Mapping):
            self._queued.append((compiled.sql, compiled.args(params), False))
        else:
            self._queued.append((compiled.sql, [compiled.args(p) for p in params], True))
        self.last_sql = compiled.sql
        return compiled

    async def _send(self, *, commit: bool) -> list[Any]:
        steps, self._queued = self._queued, []
        begin = not self._begun
        if begin and not steps:  # nothing was written: nothing to begin or commit
            return []
        self._begun = True
        try:
            rows: list[Any] = await self._driver._execute(
                _on_sqlite_thread, self._driver._conn, begin, steps, commit
            )
        except Exception:
            self._done = True  # rolled back on the thread
            raise
        # cancelled: the call may still be running on the thread, so ``rollback`` queues a
        # rollback behind it (aiosqlite runs a connection's calls in order)
        return rows

    async def execute(self, prepared: Prepared, params: Params | Sequence[Params]) -> None:
        self._queue(prepared, params)

    async def returning(self, prepared: Prepared, params: Params) -> dict[str, Any] | None:
        compiled = self._queue(prepared, params)
        rows = await self._send(commit=False)
        return compiled.row(rows[0]) if rows else None

    async def commit(self) -> None:
        self._done = True
        await self._send(commit=True)

    async def rollback(self) -> None:
        if self._done or not self._begun:
            self._queued.clear()
            return
        self._done = True
        await self._driver._execute(_rollback_if_open, self._driver._conn)


def _rollback_if_open(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.rollback()


class _Asyncpg:
    """asyncpg's transaction; each statement is sent when it is run."""

    def __init__(self, driver: Any, dialect: Dialect) -> None:
        self._driver = driver  # an asyncpg.Connection
        self._dialect = dialect
        self._transaction: Any = None
        self.last_sql: str | None = None

    async def _begun(self) -> None:
        if self._transaction is None:
            self._transaction = self._driver.transaction()
            await self._transaction.start()

    async def execute(self, prepared: Prepared, params: Params | Sequence[Params]) -> None:
        compiled = prepared.compiled(self._dialect)
        self.last_sql = compiled.sql
        await self._begun()
        if isinstance(params, Mapping):
            await self._driver.execute(compiled.sql, *compiled.args(params))
        else:
            await self._driver.executemany(compiled.sql, [compiled.args(p) for p in params])

    async def returning(self, prepared: Prepared, params: Params) -> dict[str, Any] | None:
        compiled = prepared.compiled(self._dialect)
        self.last_sql = compiled.sql
        await self._begun()
        raw = await self._driver.fetchrow(compiled.sql, *compiled.args(params))
        return None if raw is None else compiled.row(raw)

    async def commit(self) -> None:
        if self._transaction is not None:
            transaction, self._transaction = self._transaction, None
            await transaction.commit()

    async def rollback(self) -> None:
        if self._transaction is not None:
            transaction, self._transaction = self._transaction, None
            await transaction.rollback()
