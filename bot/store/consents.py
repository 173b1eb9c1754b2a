"""Consents: the person a run targets allows it (or not) before anything is sent for them.

Life of a consent::

    asked ──decide_consent(allow)──> allowed ──finish_consent──> done
      ├──decide_consent(allow, wait)──> agreed ──(the scheduled run's time)──> allowed ──> done
      ├──decide_consent(not now)──> refused
      ├──expire_consents──> expired
      └──cancel_round (its scheduled run was cancelled)──> cancelled    (agreed too)

``decide_consent`` is one conditional ``UPDATE`` (state ``asked``, not expired, the person asked):
whatever the number of clicks and replicas, exactly one of them moves the consent on, and only
that one executes the run (``bot.consent``). ``close_stale_consents`` hands an ``allowed``
consent whose process died to one caller, to be reported as of unknown outcome, never re-run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ._base import StoreBase, new_id, utc
from .errors import RecordNotFound
from .schema import requests
from .schema_consents import consent_rounds, consents

__all__ = ["ConsentAnswer", "ConsentRecord", "ConsentState", "ConsentsMixin"]

#: asked ──Allow──> allowed (its execute is being sent) ──> done; asked ──Not now──> refused;
#: asked ──expiry──> expired; a scheduled run's Allow: agreed (waits for the run's time)
ConsentState = Literal["asked", "agreed", "allowed", "done", "refused", "expired", "cancelled"]
#: why ``decide_consent`` refused: unknown id; expired; already answered; not the person asked;
#: its scheduled run was cancelled.
ConsentRefusalReason = Literal["not_found", "expired", "settled", "not_asked", "cancelled"]


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One person asked to allow a run on them; ``request_id`` is the run recorded for them alone
    (``consent_pending`` until they answer), which is executed once, after their Allow."""

    id: str
    request_id: str
    requester_id: str
    user_id: str  #: the Slack user asked: the only one whose click counts
    upn: str
    label: str
    created_at: datetime
    expires_at: datetime
    updated_at: datetime
    state: ConsentState
    message_channel: str | None
    message_ts: str | None
    decided_at: datetime | None
    round_id: str | None = None  #: the people asked together (``consent_rounds``)
    #: a scheduled run's time: an Allow then waits for it (``agreed``), and so does the expiry
    run_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConsentAnswer:
    """The answer to an Allow or Not now: ``accepted`` for the one click that settles it."""

    accepted: bool
    reason: ConsentRefusalReason | None
    consent: ConsentRecord | None


_COLUMNS = (
    *consents.c,
    requests.c.user_id.label("requester_id"),
    consent_rounds.c.run_at.label("run_at"),
)


def _select() -> Any:
    return (
        select(*_COLUMNS)
        .join(requests, requests.c.id == consents.c.request_id)
        .outerjoin(consent_rounds, consent_rounds.c.id == consents.c.round_id)
    )


def _record(row: RowMapping) -> ConsentRecord:
    return ConsentRecord(
        id=row["id"],
        request_id=row["request_id"],
        requester_id=row["requester_id"],
        user_id=row["user_id"],
        upn=row["upn"],
        label=row["label"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        updated_at=row["updated_at"],
        state=cast(ConsentState, row["state"]),
        message_channel=row["message_channel"],
        message_ts=row["message_ts"],
        decided_at=row["decided_at"],
        round_id=row["round_id"],
        run_at=row["run_at"],
    )


async def _get(conn: AsyncConnection, consent_id: str) -> ConsentRecord | None:
    row = (await conn.execute(_select().where(consents.c.id == consent_id))).mappings().first()
    return _record(row) if row is not None else None


async def _load(conn: AsyncConnection, ids: list[str]) -> list[ConsentRecord]:
    if not ids:
        return []
    query = _select().where(consents.c.id.in_(ids)).order_by(consents.c.expires_at, consents.c.id)
    return [_record(r) for r in (await conn.execute(query)).mappings().all()]


def _refusal(consent: ConsentRecord | None, user_id: str, now: datetime) -> ConsentRefusalReason:
    if consent is None:
        return "not_found"
    if consent.user_id != user_id:
        return "not_asked"
    if consent.state == "cancelled":
        return "cancelled"
    if consent.state == "expired" or (consent.state == "asked" and consent.expires_at <= now):
        return "expired"
    return "settled"


class ConsentsMixin(StoreBase):
    async def create_consent(
        self,
        *,
        request_id: str,
        user_id: str,
        upn: str,
        label: str,
        expires_at: datetime,
        round_id: str | None = None,
        now: datetime | None = None,
    ) -> ConsentRecord:
        """Ask ``user_id`` (the person ``upn``) to allow the recorded request ``request_id``."""
        at = utc(now)
        consent_id = new_id()
        async with self._write() as conn:
            await conn.execute(
                consents.insert().values(
                    id=consent_id,
                    request_id=request_id,
                    user_id=user_id,
                    upn=upn,
                    label=label,
                    created_at=at,
                    expires_at=utc(expires_at),
                    updated_at=at,
                    state="asked",
                    round_id=round_id,
                )
            )
            created = await _get(conn, consent_id)
        assert created is not None
        return created

    async def get_consent(self, consent_id: str) -> ConsentRecord | None:
        async with self._read() as conn:
            return await _get(conn, consent_id)

    async def set_consent_message(
        self, consent_id: str, channel: str, ts: str, *, now: datetime | None = None
    ) -> ConsentRecord:
        """Remember where the question was posted; raise ``RecordNotFound``."""
        async with self._write() as conn:
            result = await conn.execute(
                consents.update()
                .where(consents.c.id == consent_id)
                .values(message_channel=channel, message_ts=ts, updated_at=utc(now))
            )
            if result.rowcount == 0:
                raise RecordNotFound(f"no consent with id {consent_id!r}")
            found = await _get(conn, consent_id)
        assert found is not None
        return found

    async def decide_consent(
        self,
        consent_id: str,
        user_id: str,
        *,
        allow: bool,
        wait: bool = False,
        now: datetime | None = None,
    ) -> ConsentAnswer:
        """The asked person's Allow (``allowed``; ``agreed`` with ``wait``: a scheduled run's,
        sent at its time) or Not now (``refused``), atomically: only for the person asked, while
        it is asked and unexpired; exactly one click is accepted."""
        at = utc(now)
        state: ConsentState = ("agreed" if wait else "allowed") if allow else "refused"
        async with self._write() as conn:
            result = await conn.execute(
                consents.update()
                .where(
                    consents.c.id == consent_id,
                    consents.c.user_id == user_id,
                    consents.c.state == "asked",
                    consents.c.expires_at > at,
                )
                .values(state=state, decided_at=at, updated_at=at)
            )
            after = await _get(conn, consent_id)
        if result.rowcount == 1:
            return ConsentAnswer(True, None, after)
        return ConsentAnswer(False, _refusal(after, user_id, at), after)

    async def finish_consent(self, consent_id: str, *, now: datetime | None = None) -> None:
        """The allowed run was sent (or failed): the consent is done."""
        at = utc(now)
        async with self._write() as conn:
            await conn.execute(
                consents.update()
                .where(consents.c.id == consent_id, consents.c.state == "allowed")
                .values(state="done", updated_at=at)
            )

    async def expire_consents(self, now: datetime | None = None) -> list[ConsentRecord]:
        """Mark asked consents past their expiry as expired and return exactly those."""
        at = utc(now)
        async with self._write() as conn:
            ids = (
                (
                    await conn.execute(
                        consents.update()
                        .where(consents.c.state == "asked", consents.c.expires_at <= at)
                        .values(state="expired", decided_at=at, updated_at=at)
                        .returning(consents.c.id)
                    )
                )
                .scalars()
                .all()
            )
            return await _load(conn, list(ids))

    async def close_stale_consents(
        self, older_than: timedelta, now: datetime | None = None
    ) -> list[ConsentRecord]:
        """Close consents left ``allowed`` for longer than ``older_than`` (their process died
        while sending): each is returned to one caller, to report the outcome as unknown."""
        at = utc(now)
        async with self._write() as conn:
            ids = (
                (
                    await conn.execute(
                        consents.update()
                        .where(
                            consents.c.state == "allowed",
                            consents.c.updated_at <= at - older_than,
                        )
                        .values(state="done", updated_at=at)
                        .returning(consents.c.id)
                    )
                )
                .scalars()
                .all()
            )
            return await _load(conn, list(ids))

    async def consents_of_request(self, request_id: str) -> list[ConsentRecord]:
        async with self._read() as conn:
            query = _select().where(consents.c.request_id == request_id)
            return [_record(r) for r in (await conn.execute(query)).mappings().all()]

    async def consents_waiting_on(
        self, user_id: str, *, now: datetime | None = None, limit: int = 15
    ) -> list[ConsentRecord]:
        """The questions ``user_id`` has not answered yet and may still answer, soonest first."""
        query = (
            _select()
            .where(
                consents.c.user_id == user_id,
                consents.c.state == "asked",
                consents.c.expires_at > utc(now),
            )
            .order_by(consents.c.expires_at, consents.c.id)
            .limit(limit)
        )
        async with self._read() as conn:
            return [_record(r) for r in (await conn.execute(query)).mappings().all()]
