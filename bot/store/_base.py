"""What every part of the store shares: the engine, transactions and the clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, nullcontext
from datetime import UTC, datetime
from typing import Protocol
from uuid import uuid4

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import direct
from .engine import READ_ONLY, translate_errors
from .errors import StoreUnavailable

__all__ = ["StoreBase", "Write", "new_id", "utc"]


class Write(Protocol):
    """A change another store method makes in its own transaction (``update_request``'s
    ``also``): the writes of one step in one commit."""

    async def apply(self, conn: AsyncConnection, at: datetime) -> None: ...


def new_id() -> str:
    return str(uuid4())


def utc(now: datetime | None) -> datetime:
    """``now`` (which must be timezone-aware) in UTC, or the current time."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: the store takes timezone-aware datetimes")
    return now.astimezone(UTC)


class StoreBase:
    """Holds the engine; ``_write()`` and ``_read()`` open one transaction each.

    A write transaction is ``BEGIN IMMEDIATE`` on SQLite (the write lock from the start) and READ
    COMMITTED on PostgreSQL, where row locks (``FOR UPDATE``) or a single conditional
    ``UPDATE ... RETURNING`` make each decision atomic.

    On SQLite, writers of this process also queue on an ``asyncio.Lock`` before asking for the
    database's write lock: SQLite admits one writer at a time anyway, and waiting on the lock
    costs nothing where waiting on ``busy_timeout`` means polling with sleeps. Other processes
    still meet at SQLite's own lock, which is what makes the decisions atomic.
    """

    def __init__(self, engine: AsyncEngine, *, where: str, ping_timeout: float = 5.0) -> None:
        self._engine: AsyncEngine | None = engine
        self._reader: AsyncEngine | None = engine.execution_options(**{READ_ONLY: True})
        self._where = where
        self._ping_timeout = ping_timeout
        self._write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        engine = self._engine
        if engine is None:
            raise StoreUnavailable("the store is closed")
        return engine.dialect.name

    def _live(self, *, read_only: bool = False) -> AsyncEngine:
        engine = self._reader if read_only else self._engine
        if engine is None:
            raise StoreUnavailable(f"the store for {self._where} is closed")
        return engine

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        engine = self._live()
        async with self._write_lock or nullcontext():
            with translate_errors(self._where):
                async with engine.begin() as conn:
                    yield conn

    @asynccontextmanager
    async def _prepared(
        self, *, through_sqlalchemy: bool = False
    ) -> AsyncIterator[direct.Executor]:
        """A write transaction of prepared statements (``direct``): on the driver's connection,
        or, ``through_sqlalchemy``, in a SQLAlchemy transaction (``.conn``), for writes that
        need one (``Write.apply``)."""
        engine = self._live()
        async with self._write_lock or nullcontext():
            with translate_errors(self._where):
                if through_sqlalchemy:
                    async with engine.begin() as conn:
                        yield direct.SQLAlchemyExecutor(conn)
                    return
                async with engine.connect() as conn, direct.transaction(conn) as tx:
                    yield tx

    async def apply(self, writes: Sequence[Write], now: datetime | None = None) -> None:
        """``writes`` in one transaction of their own."""
        at = utc(now)
        async with self._write() as conn:
            for write in writes:
                await write.apply(conn, at)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        engine = self._live(read_only=True)
        with translate_errors(self._where):
            async with engine.begin() as conn:
                yield conn
