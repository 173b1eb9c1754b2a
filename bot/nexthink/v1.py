"""V2 execute requests turned into V1 ones (``POST /api/v1/workflows/execute``).

V1 takes only SIDs (users) and Collector UUIDs (devices). A run that names anything else (people
by UPN or UID, devices by name or UID) cannot go through V1: ``NeedsV2`` says which targets, and
nothing is sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import NeedsV2
from .models import ExecutionRequest, ExternalIdsExecutionRequest

__all__ = ["v1_bodies"]


def v1_bodies(
    requests: Sequence[ExternalIdsExecutionRequest], *, forced: bool
) -> list[ExecutionRequest]:
    """The V1 bodies of these V2 requests; ``NeedsV2`` if one of their targets is not a SID or
    a Collector UUID (``forced``: V1 because ``NEXTHINK_EXECUTE_API=v1``, not a missing V2)."""
    bodies: list[ExecutionRequest] = []
    unexpressible: list[str] = []
    kinds: list[str] = []
    for request in requests:
        sids: list[str] = []
        collectors: list[str] = []
        for user in request.users:
            if user.sid is not None:
                sids.append(user.sid)
            else:
                kind = "people by UPN" if user.upn is not None else "people by UID"
                kinds.append(kind)
                unexpressible.append(user.upn or user.uid or "?")
        for device in request.devices:
            if device.collector_uid is not None:
                collectors.append(device.collector_uid)
            else:
                kind = "devices by name" if device.name is not None else "devices by UID"
                kinds.append(kind)
                unexpressible.append(device.name or device.uid or "?")
        if not unexpressible:
            bodies.append(
                ExecutionRequest(
                    workflow_id=request.workflow_id,
                    users=sids,
                    devices=collectors,
                    params=dict(request.params),
                )
            )
    if unexpressible:
        why = "NEXTHINK_EXECUTE_API=v1" if forced else "this Nexthink instance has no V2 execute"
        shown = ", ".join(unexpressible[:5])
        more = len(unexpressible) - 5
        shown += f" and {more} more" if more > 0 else ""
        named = " or ".join(dict.fromkeys(kinds))
        exc = NeedsV2(
            f"The run of workflow {requests[0].workflow_id!r} was not sent: {why}; V1 cannot "
            f"target {named}: {shown}. V1 takes only SIDs and Collector UUIDs.",
            unexpressible=tuple(unexpressible[:5]),
        )
        raise exc
    return bodies
