"""aiosqlite as SQLAlchemy's driver, with one hand-off to its thread per statement.

aiosqlite runs each SQLite connection in a thread of its own; every call crosses to that
thread and back (a queue put, a wake-up, the GIL handed over twice). SQLAlchemy's adapter makes
four such calls for one statement (open a cursor, execute, fetch the rows, close the cursor) and
three for the ``BEGIN IMMEDIATE`` of each write transaction, which on a busy machine cost more
CPU than the statements themselves. This adapter runs each statement as one call on that thread
(cursor, execute, rows, close) and keeps what SQLAlchemy reads afterwards (``description``,
``rowcount``, ``lastrowid``, the rows); a transaction's ``BEGIN`` / ``BEGIN IMMEDIATE`` goes in
the call of its first statement (nothing reaches the database between the two). A write
transaction of two statements is three hand-offs (BEGIN and the first statement, the second,
COMMIT) instead of twelve, and the pool's rollback of a connection it takes back after a
commit is none. The SQL, the connection, its
thread and its errors are aiosqlite's, unchanged.

``create_engine`` in ``engine.py`` passes ``DBAPI`` as the engine's ``module``. It uses what
aiosqlite's own methods use (``Connection._execute``, ``_conn``): private, so the version in
``requirements/`` (0.22.1) is the one it is known to work with.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from threading import Thread
from typing import Any, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

__all__ = ["DBAPI"]


class _Ran:
    """What SQLAlchemy reads of a cursor once its statement ran."""

    __slots__ = ("arraysize", "description", "lastrowid", "rowcount")

    def __init__(
        self, description: Any = None, rowcount: int = -1, lastrowid: int | None = None
    ) -> None:
        self.description = description
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        self.arraysize = 1


_BEGINS = frozenset({"BEGIN", "BEGIN IMMEDIATE"})


def _run(
    conn: sqlite3.Connection, begin: str | None, operation: str, parameters: Any, many: bool
) -> tuple[_Ran, list[Any]]:
    """On aiosqlite's thread: the transaction's ``begin`` if it is still to be sent, then the
    whole statement, its rows and the cursor's figures."""
    if begin is not None:
        conn.execute(begin)
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return _Ran(description, cursor.rowcount, cursor.lastrowid), rows
    finally:
        cursor.close()


class _Cursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor that opens nothing until a statement runs, and then runs it in one call."""

    __slots__ = ()

    def __init__(self, adapt_connection: Any) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = _Ran()  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()

    @property
    def _owner(self) -> _Connection:
        return cast(_Connection, self._adapt_connection)

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        if operation in _BEGINS and not parameters:  # sent with the first statement
            self._owner._begin = operation
            self._cursor = _Ran()  # type: ignore[assignment]
            self._rows.clear()
            return
        self._call(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        self._call(operation, seq_of_parameters, many=True)

    def _call(self, operation: Any, parameters: Any, *, many: bool) -> None:
        begin, self._owner._begin = self._owner._begin, None
        try:
            ran, rows = await_(self._go(begin, operation, parameters, many))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._cursor = ran  # type: ignore[assignment]
        self._rows = collections.deque(rows)

    async def _go(
        self, begin: str | None, operation: Any, parameters: Any, many: bool
    ) -> tuple[_Ran, list[Any]]:
        connection: Any = self._connection  # an aiosqlite.Connection: its thread's queue
        async with self._adapt_connection._execute_mutex:
            ran: tuple[_Ran, list[Any]] = await connection._execute(
                _run, connection._conn, begin, operation, parameters, many
            )
            return ran

    async def _async_soft_close(self) -> None:
        return  # no sqlite3 cursor is left open between calls

    def close(self) -> None:
        self._rows.clear()


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_begin",)
    _cursor_cls = _Cursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        #: the transaction's BEGIN, held until its first statement (sent in the same call)
        self._begin: str | None = None

    def commit(self) -> None:
        if self._begin is not None:  # a transaction with no statement: nothing was begun
            self._begin = None
            return
        super().commit()

    def rollback(self) -> None:
        """As ``sqlite3``'s own rollback, which does nothing outside a transaction, but without
        the hand-off then: the pool rolls back every connection it takes back, also after a
        commit. (Read here, on the loop's thread, while the connection's thread is idle.)"""
        self._begin = None
        raw: sqlite3.Connection | None = self._connection._connection
        if raw is not None and not raw.in_transaction:
            return
        super().rollback()


class _DBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        connection = self.aiosqlite.connect(*arg, **kw)
        # as SQLAlchemy's own adapter does: before aiosqlite 0.22 the connection was the thread
        thread = connection if isinstance(connection, Thread) else connection._thread
        thread.daemon = True
        return _Connection(self, await_(connection))


#: the DBAPI module for ``create_async_engine(..., module=DBAPI)``
DBAPI = _DBAPI(aiosqlite, sqlite3)
