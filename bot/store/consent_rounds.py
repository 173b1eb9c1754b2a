"""Consent rounds: the people one run asked together (``consents.round_id``), and where the
requester's one reply about them lives.

The reply is re-rendered from ``consent_round`` (every person's consent and their run's state, in
one read) after each change, whichever replica made it; ``set_round_reply`` and
``drop_round_url`` move the reply once, from a response URL Slack no longer takes to a message
that can be updated. A round asked when its run was scheduled (``schedule_id``) waits for the
run's time: ``expire_round`` closes whoever has not answered by then, ``claim_agreed`` hands each
Allow to the one replica that runs the schedule, ``cancel_round`` closes them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import select

from ._base import StoreBase, new_id, utc
from .consents import ConsentRecord, _load, _record, _select
from .schema import requests
from .schema_consents import consent_rounds, consents

__all__ = ["RoundPerson", "RoundRecord", "RoundsMixin"]


@dataclass(frozen=True, slots=True)
class RoundPerson:
    """One person of a round: their consent and the state of the run recorded for them."""

    consent: ConsentRecord
    request_state: str
    request_error: str | None
    request_uuids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoundRecord:
    id: str
    created_at: datetime
    requester_id: str
    workflow_id: str
    rest: tuple[str, ...]
    response_url: str | None
    reply_channel: str | None
    reply_ts: str | None
    schedule_id: str | None
    run_at: datetime | None
    people: tuple[RoundPerson, ...] = ()
    #: the requester's workspace (of the runs recorded for the people), for its Slack
    team_id: str | None = None
    enterprise_id: str | None = None


def _round(row: Any, people: Sequence[RoundPerson], place: Any) -> RoundRecord:
    return RoundRecord(
        id=row["id"],
        created_at=row["created_at"],
        requester_id=row["requester_id"],
        workflow_id=row["workflow_id"],
        rest=tuple(str(x) for x in cast(list[Any], row["rest"] or [])),
        response_url=row["response_url"],
        reply_channel=row["reply_channel"],
        reply_ts=row["reply_ts"],
        schedule_id=row["schedule_id"],
        run_at=row["run_at"],
        people=tuple(people),
        team_id=place["team_id"] if place else None,
        enterprise_id=place["enterprise_id"] if place else None,
    )


def _people_query(round_id: str) -> Any:
    return (
        _select()
        .add_columns(
            requests.c.state.label("request_state"),
            requests.c.error.label("request_error"),
            requests.c.nexthink_request_uuids.label("request_uuids"),
            requests.c.team_id.label("team_id"),
            requests.c.enterprise_id.label("enterprise_id"),
        )
        .where(consents.c.round_id == round_id)
        .order_by(consents.c.created_at, consents.c.id)
    )


class RoundsMixin(StoreBase):
    async def create_consent_round(
        self,
        *,
        requester_id: str,
        workflow_id: str,
        rest: Sequence[str],
        response_url: str | None,
        schedule_id: str | None = None,
        run_at: datetime | None = None,
        now: datetime | None = None,
    ) -> str:
        round_id = new_id()
        async with self._write() as conn:
            await conn.execute(
                consent_rounds.insert().values(
                    id=round_id,
                    created_at=utc(now),
                    requester_id=requester_id,
                    workflow_id=workflow_id,
                    rest=list(rest),
                    response_url=response_url,
                    schedule_id=schedule_id,
                    run_at=utc(run_at) if run_at is not None else None,
                )
            )
        return round_id

    async def consent_round(self, round_id: str) -> RoundRecord | None:
        """The round and each person's consent and run state, read together."""
        async with self._read() as conn:
            row = (
                (await conn.execute(select(consent_rounds).where(consent_rounds.c.id == round_id)))
                .mappings()
                .first()
            )
            if row is None:
                return None
            rows = (await conn.execute(_people_query(round_id))).mappings().all()
        people = [
            RoundPerson(
                _record(r),
                str(r["request_state"]),
                r["request_error"],
                tuple(str(u) for u in r["request_uuids"] or ()),
            )
            for r in rows
        ]
        return _round(row, people, rows[0] if rows else None)

    async def round_of_schedule(self, schedule_id: str) -> RoundRecord | None:
        async with self._read() as conn:
            found = (
                await conn.execute(
                    select(consent_rounds.c.id).where(consent_rounds.c.schedule_id == schedule_id)
                )
            ).scalar()
        return await self.consent_round(str(found)) if found is not None else None

    async def set_round_reply(self, round_id: str, channel: str, ts: str) -> None:
        """The reply is now the message at (channel, ts), updated in place from now on."""
        async with self._write() as conn:
            await conn.execute(
                consent_rounds.update()
                .where(consent_rounds.c.id == round_id)
                .values(reply_channel=channel, reply_ts=ts, response_url=None)
            )

    async def drop_round_url(self, round_id: str, url: str) -> bool:
        """Slack no longer takes ``url``: whether this caller is the one to move the reply."""
        async with self._write() as conn:
            result = await conn.execute(
                consent_rounds.update()
                .where(consent_rounds.c.id == round_id, consent_rounds.c.response_url == url)
                .values(response_url=None)
            )
        return result.rowcount == 1

    async def _close_round(
        self, round_id: str, states: tuple[str, ...], to: str, now: datetime | None
    ) -> list[ConsentRecord]:
        at = utc(now)
        async with self._write() as conn:
            ids = (
                (
                    await conn.execute(
                        consents.update()
                        .where(consents.c.round_id == round_id, consents.c.state.in_(states))
                        .values(state=to, decided_at=at, updated_at=at)
                        .returning(consents.c.id)
                    )
                )
                .scalars()
                .all()
            )
            return await _load(conn, list(ids))

    async def expire_round(self, round_id: str, now: datetime | None = None) -> list[ConsentRecord]:
        """The scheduled run's time came: its unanswered consents are expired (returned once)."""
        return await self._close_round(round_id, ("asked",), "expired", now)

    async def cancel_round(self, round_id: str, now: datetime | None = None) -> list[ConsentRecord]:
        """The scheduled run was cancelled (or will not run): its open consents are closed."""
        return await self._close_round(round_id, ("asked", "agreed"), "cancelled", now)

    async def claim_agreed(self, consent_id: str, now: datetime | None = None) -> bool:
        """``agreed`` → ``allowed`` for the one caller that then sends the execute."""
        at = utc(now)
        async with self._write() as conn:
            result = await conn.execute(
                consents.update()
                .where(consents.c.id == consent_id, consents.c.state == "agreed")
                .values(state="allowed", updated_at=at)
            )
        return result.rowcount == 1
