"""The audit of every request: runs, resumes, decisions on waits and bot-side approvals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import RowMapping, select

from ._base import StoreBase, new_id, utc
from .errors import RecordNotFound
from .records import REQUEST_KINDS, REQUEST_STATES, RequestKind, RequestRecord, RequestState
from .schema import request_executions, requests

__all__ = ["RequestsMixin", "request_from_row"]

_LIST_FIELDS = ("nexthink_request_uuids", "executions_uuids", "approved_by")
_UPDATABLE = frozenset(
    {
        "state",
        "nexthink_request_uuids",
        "executions_uuids",
        "error",
        "approved_by",
        "response_url",
        "message_channel",
        "message_ts",
        "targets",
        "params",
        "workflow_id",
        "user_upn",
    }
)


#: one statement for every insert, its values bound apart: compiled and cached once
_INSERT = requests.insert()


def request_from_row(row: RowMapping | Mapping[str, Any]) -> RequestRecord:
    return RequestRecord(
        id=row["id"],
        kind=cast(RequestKind, row["kind"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        team_id=row["team_id"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        user_upn=row["user_upn"],
        workflow_id=row["workflow_id"],
        targets=tuple(dict(t) for t in row["targets"] or ()),
        params=dict(row["params"] or {}),
        state=cast(RequestState, row["state"]),
        nexthink_request_uuids=tuple(row["nexthink_request_uuids"] or ()),
        executions_uuids=tuple(row["executions_uuids"] or ()),
        error=row["error"],
        approved_by=tuple(row["approved_by"] or ()),
        response_url=row["response_url"],
        message_channel=row["message_channel"],
        message_ts=row["message_ts"],
        enterprise_id=row["enterprise_id"],
    )


def _check_state(state: object) -> None:
    if state not in REQUEST_STATES:
        raise ValueError(f"unknown request state {state!r}; one of {sorted(REQUEST_STATES)}")


class RequestsMixin(StoreBase):
    async def create_request(
        self,
        *,
        kind: RequestKind,
        user_id: str,
        user_upn: str | None = None,
        team_id: str | None = None,
        enterprise_id: str | None = None,
        channel_id: str | None = None,
        workflow_id: str | None = None,
        targets: Sequence[Mapping[str, Any]] = (),
        params: Mapping[str, Any] | None = None,
        state: RequestState = "pending",
        response_url: str | None = None,
        now: datetime | None = None,
    ) -> RequestRecord:
        """Record a new request (before anything is sent to Nexthink) and return it."""
        if kind not in REQUEST_KINDS:
            raise ValueError(f"unknown request kind {kind!r}; one of {sorted(REQUEST_KINDS)}")
        _check_state(state)
        at = utc(now)
        values: dict[str, Any] = {
            "id": new_id(),
            "kind": kind,
            "created_at": at,
            "updated_at": at,
            "team_id": team_id,
            "enterprise_id": enterprise_id,
            "channel_id": channel_id,
            "user_id": user_id,
            "user_upn": user_upn,
            "workflow_id": workflow_id,
            "targets": [dict(t) for t in targets],
            "params": dict(params or {}),
            "state": state,
            "nexthink_request_uuids": [],
            "executions_uuids": [],
            "error": None,
            "approved_by": [],
            "response_url": response_url,
            "message_channel": None,
            "message_ts": None,
        }
        async with self._write() as conn:
            await conn.execute(_INSERT, values)
        # the record is the values written: a RETURNING of every column would read back the same
        # values at twice the CPU (a statement built per call, then every column decoded).
        return request_from_row(values)

    async def update_request(
        self, request_id: str, *, now: datetime | None = None, **fields: Any
    ) -> RequestRecord:
        """Change some fields of a request (``updated_at`` follows); raise ``RecordNotFound``.

        Updatable: state, nexthink_request_uuids, executions_uuids, error, approved_by,
        response_url, message_channel, message_ts, targets, params, workflow_id, user_upn.
        """
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise TypeError(f"update_request cannot change {sorted(unknown)}")
        if "state" in fields:
            _check_state(fields["state"])
        values = dict(fields)
        for name in _LIST_FIELDS:
            if name in values:
                values[name] = [str(v) for v in cast(Sequence[Any], values[name])]
        if "targets" in values:
            values["targets"] = [
                dict(t) for t in cast(Sequence[Mapping[str, Any]], values["targets"])
            ]
        values["updated_at"] = utc(now)
        async with self._write() as conn:
            if values.get("executions_uuids"):
                await _link_executions(conn, request_id, values["executions_uuids"], values)
            row = (
                (
                    await conn.execute(
                        requests.update()
                        .where(requests.c.id == request_id)
                        .values(values)
                        .returning(*requests.c)
                    )
                )
                .mappings()
                .one_or_none()
            )
        if row is None:
            raise RecordNotFound(f"no request with id {request_id!r}")
        return request_from_row(row)

    async def request_for_execution(self, execution_uuid: str) -> RequestRecord | None:
        """The request whose execute started this execution (any case), or None."""
        query = (
            select(requests)
            .join(request_executions, request_executions.c.request_id == requests.c.id)
            .where(request_executions.c.execution_uuid == execution_uuid.lower())
        )
        async with self._read() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else request_from_row(row)

    async def get_request(self, request_id: str) -> RequestRecord | None:
        async with self._read() as conn:
            row = (
                (await conn.execute(select(requests).where(requests.c.id == request_id)))
                .mappings()
                .one_or_none()
            )
        return None if row is None else request_from_row(row)

    async def history(self, user_id: str, limit: int = 10) -> list[RequestRecord]:
        """The user's most recent requests, newest first."""
        query = (
            select(requests)
            .where(requests.c.user_id == user_id)
            .order_by(requests.c.created_at.desc(), requests.c.id.desc())
            .limit(max(0, limit))
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [request_from_row(row) for row in rows]


async def _link_executions(
    conn: Any, request_id: str, uuids: Sequence[str], values: Mapping[str, Any]
) -> None:
    """Record which request started each execution (once each, lower case), in the transaction
    that records the execution ids on the request."""
    wanted = sorted({str(u).lower() for u in uuids if u})
    known: set[str] = set()
    for start in range(0, len(wanted), 500):  # bounded IN lists, whatever the run's size
        chunk = wanted[start : start + 500]
        query = select(request_executions.c.execution_uuid).where(
            request_executions.c.execution_uuid.in_(chunk)
        )
        known.update((await conn.execute(query)).scalars())
    new = [u for u in wanted if u not in known]
    if new:
        at = values["updated_at"]
        await conn.execute(
            request_executions.insert(),
            [{"execution_uuid": u, "request_id": request_id, "created_at": at} for u in new],
        )
