"""One NQL execute (``POST /api/v2/nql/execute``): the request, checked before it is sent, and
its rows."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._http import Call, malformed
from .errors import BadRequest
from .results import NqlResult

__all__ = ["nql_call", "parse_rows"]

_QUERY_ID = re.compile(r"^#[a-z0-9_]{2,255}$")


def nql_call(query_id: str, parameters: Mapping[str, str]) -> Call:
    """The call that runs a predefined query; ``BadRequest`` (nothing sent) for a malformed id or
    parameters that are not strings."""
    what = f"NQL query {query_id!r}"
    if not _QUERY_ID.match(query_id):
        raise BadRequest(
            f"The {what} was not sent: a query id looks like #my_query",
            code=None,
            details="queryId: must match ^#[a-z0-9_]{2,255}$",
            endpoint="nql",
        )
    bad = [k for k, v in parameters.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise BadRequest(
            f"The {what} was not sent: parameter values must be strings",
            code=None,
            details=f"parameters: not strings: {', '.join(map(str, bad))}",
            endpoint="nql",
        )
    return Call(
        endpoint="nql",
        method="POST",
        url="/api/v2/nql/execute",
        what=what,
        idempotent=True,  # a query changes nothing: safe to repeat
        json={"queryId": query_id, "parameters": dict(parameters)},
    )


def parse_rows(data: Any) -> NqlResult:
    rows = data.get("data") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise malformed("no list of rows in 'data'")
    return NqlResult(rows)
