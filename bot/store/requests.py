"""The audit of every request: runs, resumes, decisions on waits and bot-side approvals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import RowMapping, Update, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ._base import StoreBase, Write, new_id, utc
from .audit import AuditFor, insert_audit
from .direct import Executor, Prepared, SQLAlchemyExecutor
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


#: a new request, every column given
_INSERT = Prepared(requests.insert(), columns=[c.key for c in requests.c])
#: each execution's request, once: a second insert of the same execution changes nothing
_LINK = Prepared(
    {
        "sqlite": sqlite_insert(request_executions).on_conflict_do_nothing(),
        "postgresql": pg_insert(request_executions).on_conflict_do_nothing(),
    },
    columns=["execution_uuid", "request_id", "created_at"],
)


@lru_cache(maxsize=64)
def _update(columns: tuple[str, ...]) -> Prepared:
    """``UPDATE requests SET <columns> WHERE id = :request_id RETURNING *``, prepared once for
    each set of columns (the values bound apart)."""
    statement: Update = (
        requests.update()
        .where(requests.c.id == bindparam("request_id_"))
        .values({c: bindparam(f"{c}_", type_=requests.c[c].type) for c in columns})
        .returning(*requests.c)
    )
    return Prepared(statement)


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
        ticket=row.get("ticket"),
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
        ticket: str | None = None,
        now: datetime | None = None,
        audit: AuditFor | None = None,
    ) -> RequestRecord:
        """Record a new request (before anything is sent to Nexthink) and return it; ``audit``
        (``AuditTrail.for_request``): its audit event, written in the same transaction."""
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
            "ticket": ticket,
        }
        # the record is the values written: a RETURNING of every column would read back the same
        # values at twice the CPU (a statement built per call, then every column decoded).
        record = request_from_row(values)
        event = audit(record) if audit is not None else None
        async with self._prepared() as tx:
            await tx.execute(_INSERT, values)
            if event is not None:
                await insert_audit(tx, [event])
        return record

    async def update_request(
        self,
        request_id: str,
        *,
        now: datetime | None = None,
        audit: AuditFor | None = None,
        also: Sequence[Write] = (),
        **fields: Any,
    ) -> RequestRecord:
        """Change some fields of a request (``updated_at`` follows); raise ``RecordNotFound``.

        Updatable: state, nexthink_request_uuids, executions_uuids, error, approved_by,
        response_url, message_channel, message_ts, targets, params, workflow_id, user_upn.
        In the same transaction: ``audit`` (``AuditTrail.for_request``), the audit event of the
        record as changed, and ``also``, other records' changes of the same step (a scheduled
        run's end: ``ScheduleDone``); a request not found changes nothing.
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
        at = values["updated_at"] = utc(now)
        columns = tuple(sorted(values))
        bound = {f"{c}_": values[c] for c in columns}
        bound["request_id_"] = request_id
        async with self._prepared(through_sqlalchemy=bool(also)) as tx:
            if values.get("executions_uuids"):
                await _link_executions(tx, request_id, values["executions_uuids"], at)
            row = await tx.returning(_update(columns), bound)
            if row is None:  # rolled back: nothing of this step is written
                raise RecordNotFound(f"no request with id {request_id!r}")
            record = request_from_row(row)
            if audit is not None:
                await insert_audit(tx, [audit(record)])
            if also:
                conn = cast(SQLAlchemyExecutor, tx).conn
                for write in also:
                    await write.apply(conn, at)
        return record

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

    async def history(
        self,
        user_id: str | None = None,
        limit: int = 10,
        *,
        upn: str | None = None,
        workflow: str | None = None,
        ticket: str | None = None,
    ) -> list[RequestRecord]:
        """The most recent requests, newest first: the user's (by Slack id, or ``upn`` without
        regard to case), the workflow's (its NQL id) or the ticket's, exactly, or all those conditions together.
        At least one of them is needed."""
        conditions = []
        if user_id is not None:
            conditions.append(requests.c.user_id == user_id)
        if upn is not None:
            conditions.append(func.lower(requests.c.user_upn) == upn.lower())
        if workflow is not None:
            conditions.append(requests.c.workflow_id == workflow)
        if ticket is not None:
            conditions.append(requests.c.ticket == ticket)
        if not conditions:
            raise ValueError("history needs a user, a workflow or a ticket")
        query = (
            select(requests)
            .where(*conditions)
            .order_by(requests.c.created_at.desc(), requests.c.id.desc())
            .limit(max(0, limit))
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [request_from_row(row) for row in rows]


async def _link_executions(
    tx: Executor, request_id: str, uuids: Sequence[str], at: datetime
) -> None:
    """Record which request started each execution (once each, lower case; the first request
    keeps it), in the transaction that records the execution ids on the request: one
    ``INSERT … ON CONFLICT DO NOTHING``."""
    wanted = sorted({str(u).lower() for u in uuids if u})
    rows = [{"execution_uuid": u, "request_id": request_id, "created_at": at} for u in wanted]
    if len(rows) == 1:
        await tx.execute(_LINK, rows[0])
    elif rows:
        await tx.execute(_LINK, rows)
