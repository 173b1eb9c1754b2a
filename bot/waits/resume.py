"""``/nexthink resume``: a click on the execution's question when it has one, else the tool of
roles with ``resume: true``.

An execution the bot asked a question for is resumed only as a click by the resumer would resume
it (``bot.waits.decide``): the same approvers, the requester never deciding (by the webhook's
``requester`` and by the bot's own record of the run), the same expiry, one decision per question;
the parameters must be one of the question's choices, the ``approverParameter`` is the resumer's
UPN whatever the command says, and the question's message is settled like a click (its buttons
stop working). Without a question, ``_trigger`` checks ``resume: true`` and sends the
trigger. Both count toward the per-user rate limit and keep to ``bot.limits``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bot import limits
from bot.logging import get_logger
from bot.nexthink.errors import NexthinkError, may_have_run
from bot.policy import Principal
from bot.policy.mrkdwn import code
from bot.runs import Refusal, Requester, Runner, error_text
from bot.store import RequestRecord, StoreError, WaitOption, WaitRecord
from bot.waits.decide import ClickRefused, decide
from bot.waits.deps import WaitDeps

__all__ = ["ResumeDeps", "ResumeResult", "Resumed", "resume"]

log = get_logger(__name__)


class ResumeDeps(WaitDeps, Protocol):
    runner: Runner


@dataclass(frozen=True)
class ResumeResult:
    """Nexthink's answer to the trigger of an execution the bot had no question for."""

    workflow_uuid: str
    execution_uuid: str
    params: Mapping[str, str]
    record: RequestRecord
    request_uuids: tuple[str, ...] = ()
    error: NexthinkError | None = None


@dataclass(frozen=True)
class Resumed:
    """What a resume did: through the question (``wait``; ``refused`` says why nothing happened,
    else its message shows the decision), or without one (``result``, Nexthink's answer)."""

    wait: WaitRecord | None = None
    refused: ClickRefused | None = None
    result: ResumeResult | None = None


async def resume(
    deps: ResumeDeps,
    requester: Requester,
    workflow_uuid: str,
    execution_uuid: str,
    params: Mapping[str, str],
) -> Resumed:
    """Resume the execution; raises ``Refusal`` before anything is sent."""
    try:
        limits.check(params=params)
    except limits.LimitExceeded as exc:
        raise Refusal(exc.message) from None
    principal = await deps.runner.admit(requester)  # the rate limit; who it is (fail closed)
    wait = await deps.store.wait_for_execution(workflow_uuid, execution_uuid)
    if wait is None:
        return Resumed(
            result=await _trigger(deps, requester, principal, workflow_uuid, execution_uuid, params)
        )
    index = _choice(wait, params)
    refused = await decide(
        deps,
        wait_id=wait.id,
        option_index=index,
        user_id=requester.user_id,
        channel_id=requester.channel_id,
        message_ts=None,
    )
    return Resumed(wait=await deps.store.get_wait(wait.id) or wait, refused=refused)


def _without(parameters: Mapping[str, str], name: str | None) -> dict[str, str]:
    return {k: v for k, v in parameters.items() if k != name}


def _choice(wait: WaitRecord, params: Mapping[str, str]) -> int:
    """The question's option that ``params`` choose (its ``approverParameter`` aside)."""
    given = _without(params, wait.approver_parameter)
    options = wait.options
    if not given and len(options) == 1:
        return 0
    for index, option in enumerate(options):
        if _without(option.parameters, wait.approver_parameter) == given:
            return index
    raise Refusal(
        "This execution waits on a question the bot asked"
        + (f" in <#{wait.message_channel}>" if _is_channel(wait.message_channel) else "")
        + ", so it is resumed only with one of its choices: "
        + "; ".join(_written(o) for o in options[:5])
        + ". Or use the question's buttons.",
    )


def _written(option: WaitOption) -> str:
    return code(" ".join(f"{k}={v}" for k, v in option.parameters.items()) or "(no parameters)")


def _is_channel(channel: str | None) -> bool:
    return bool(channel) and str(channel)[0] in "CG"


async def _trigger(
    deps: ResumeDeps,
    requester: Requester,
    principal: Principal,
    workflow_uuid: str,
    execution_uuid: str,
    params: Mapping[str, str],
) -> ResumeResult:
    """No question: the tool of roles with ``resume: true``; records, triggers, audits."""
    decision = deps.policy.may_resume(principal, requester.channel_id)
    targets = [{"kind": "execution", "label": execution_uuid}]
    if not decision.allowed:
        await deps.audit.record(
            "run_refused",
            actor=requester.user_id,
            actor_upn=principal.upn,
            workflow=workflow_uuid,
            targets=targets,
            params=params,
            result="refused",
            detail=decision.reason,
            team_id=requester.team_id,
            enterprise_id=requester.enterprise_id,
        )
        raise Refusal(decision.reason)
    record = await deps.store.create_request(
        kind="resume",
        team_id=requester.team_id,
        enterprise_id=requester.enterprise_id,
        channel_id=requester.channel_id,
        user_id=requester.user_id,
        user_upn=principal.upn,
        workflow_id=workflow_uuid,
        targets=targets,
        params=dict(params),
        state="pending",
    )
    try:
        answers = await deps.nexthink.trigger(workflow_uuid, execution_uuid, params)
    except NexthinkError as exc:
        state = "unknown" if may_have_run(exc) else "failed"
        record = await _recorded(deps, record, state=state, error=error_text(exc))
        await deps.audit.record_request(
            "resumed",
            record,
            execution_uuids=[execution_uuid],
            result=state,
            detail=error_text(exc),
        )
        return ResumeResult(workflow_uuid, execution_uuid, params, record, error=exc)
    uuids = tuple(a.request_uuid for a in answers)
    record = await _recorded(deps, record, state="sent", nexthink_request_uuids=list(uuids))
    await deps.audit.record_request(
        "resumed", record, execution_uuids=[execution_uuid], result="sent"
    )
    return ResumeResult(workflow_uuid, execution_uuid, params, record, request_uuids=uuids)


async def _recorded(deps: ResumeDeps, record: RequestRecord, **changes: Any) -> RequestRecord:
    """Nexthink's answer recorded; without a database it is still told (and logged)."""
    try:
        return await deps.store.update_request(record.id, **changes)
    except StoreError as exc:
        log.error("request_not_recorded", record=record.id, error=str(exc))
        return record
