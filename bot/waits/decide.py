"""A click on a question's button: check it, claim the wait, send the choice to Nexthink once.

The claim is atomic in the store, so one click wins across replicas. What happened is told to the
notifier (``WaitNews``); what the clicker alone should read comes back as a ``ClickRefused``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from bot.deciders import Subject, Verdict, decider
from bot.logging import get_logger
from bot.metrics import CLICKS
from bot.nexthink.errors import BadRequest, NexthinkError, may_have_run
from bot.notifier import WaitNews
from bot.store import ClaimRefusal, StoreError, WaitOption, WaitRecord
from bot.waits.deps import WaitDeps
from bot.waits.posting import mention_of
from bot.workspaces import current

__all__ = ["ClickRefused", "decide"]

log = get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class ClickRefused:
    """Why a click did nothing: ``unknown`` (not a question the bot knows), ``policy`` (the
    clicker may not decide: ``text`` says why), or the store's claim refusal (``expired``,
    ``in_progress``, ``decided``, ``failed``, ``own_request``, ``not_found``) with who and when."""

    reason: str
    text: str = ""
    by: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class _Choice:
    wait: WaitRecord
    option: WaitOption
    user_id: str
    upn: str | None
    for_user_id: str | None = None  #: the approver a stand-in decides for


async def decide(
    deps: WaitDeps,
    *,
    wait_id: str,
    option_index: int,
    user_id: str,
    channel_id: str | None,
    message_ts: str | None,
) -> ClickRefused | None:
    """Handle one click. Returns why it did nothing, or None when the message shows the result."""
    checked = await _check(deps, wait_id, option_index, user_id, message_ts)
    if isinstance(checked, ClickRefused):
        return checked
    wait, verdict = checked
    upn = verdict.principal.upn
    for_user = verdict.on_behalf.user_id if verdict.on_behalf else None
    claim = await deps.store.claim_wait(wait.id, user_id, upn, option_index, decided_for=for_user)
    if isinstance(claim, ClaimRefusal):
        return await _claim_refused(deps, claim)
    choice = _Choice(claim, claim.options[option_index], user_id, upn, for_user)
    await _send(deps, choice, channel_id)
    return None


async def _check(
    deps: WaitDeps, wait_id: str, index: int, user_id: str, message_ts: str | None
) -> ClickRefused | tuple[WaitRecord, Verdict]:
    wait = await deps.store.get_wait(wait_id)
    stray = wait is None or bool(wait.message_ts and message_ts and wait.message_ts != message_ts)
    if wait is None or stray or not 0 <= index < len(wait.options):
        CLICKS.labels("wait", "unknown").inc()
        return ClickRefused("unknown")
    verdict = await decider(deps, user_id, Subject.of_wait(wait))
    if verdict.refusal:
        CLICKS.labels("wait", "refused").inc()
        return ClickRefused("policy", text=verdict.refusal)
    return wait, verdict


async def _claim_refused(deps: WaitDeps, claim: ClaimRefusal) -> ClickRefused:
    CLICKS.labels("wait", claim.reason).inc()
    other = claim.wait
    if claim.reason == "expired" and other is not None:
        await deps.notifier.wait_changed(other, WaitNews("expired", on_click=True))
    return ClickRefused(
        claim.reason,
        by=other.decided_by if other else None,
        at=(other.decided_at or other.claimed_at) if other else None,
    )


def _news(choice: _Choice, event: str, **extra: object) -> WaitNews:
    return WaitNews(
        event,  # type: ignore[arg-type]
        user_id=choice.user_id,
        for_user_id=choice.for_user_id,
        option_label=choice.option.label,
        option_style=choice.option.style,
        **extra,  # type: ignore[arg-type]
    )


async def _send(deps: WaitDeps, choice: _Choice, channel_id: str | None) -> None:
    wait = choice.wait
    params = dict(choice.option.parameters)
    if wait.approver_parameter and choice.upn:
        params[wait.approver_parameter] = choice.upn
    await deps.notifier.wait_changed(wait, _news(choice, "sending"))
    record = await deps.store.create_request(
        kind="decision",
        user_id=choice.user_id,
        user_upn=choice.upn,
        team_id=current().team_id,  # where the decider clicked
        enterprise_id=current().enterprise_id,
        channel_id=channel_id,
        workflow_id=wait.workflow_uuid,
        targets=[{"kind": "execution", "label": wait.execution_uuid, "wait": wait.id}],
        params=params,
        state="pending",
    )
    now = datetime.now(UTC)
    assert wait.claim_token is not None
    try:
        answers = await deps.nexthink.trigger(wait.workflow_uuid, wait.execution_uuid, params)
    except BadRequest as exc:  # Nexthink refused this trigger: the question is closed
        # (a 403 is the bot's credential lacking a permission, fixable: like the other errors
        # below, it leaves the question open for another try)
        await _refused(deps, choice, record.id, exc, now)
        return
    except NexthinkError as exc:
        await _unclear(deps, choice, record.id, exc, now)
        return
    except asyncio.CancelledError:
        await _interrupted(deps, choice, record.id, now)
        raise
    uuids = ", ".join(f"`{a.request_uuid}`" for a in answers) or "no request id"
    done = await _recorded(
        deps.store.finish_wait(wait.id, wait.claim_token, "decided", f"resumed: {uuids}")
    )
    await _recorded(
        deps.store.update_request(
            record.id, state="sent", nexthink_request_uuids=[a.request_uuid for a in answers]
        )
    )
    CLICKS.labels("wait", "ok").inc()
    request_uuids = [a.request_uuid for a in answers]
    await _audit(deps, choice, record.id, "decided", f"resumed: {', '.join(request_uuids)}")
    await deps.audit.record_wait(
        "resumed",
        done or wait,
        actor=choice.user_id,
        actor_upn=choice.upn,
        params=params,
        request_uuid=",".join(request_uuids) or None,
        request_id=record.id,
        result="sent",
        detail=None,
    )
    await deps.notifier.wait_changed(done or wait, _news(choice, "decided", at=now, detail=uuids))


async def _refused(
    deps: WaitDeps, choice: _Choice, record_id: str, exc: BadRequest, now: datetime
) -> None:
    wait = choice.wait
    assert wait.claim_token is not None
    detail = " ".join(p for p in (exc.code or "", exc.details or exc.message) if p)
    done = await _recorded(
        deps.store.finish_wait(wait.id, wait.claim_token, "failed", f"refused: {detail}")
    )
    await _recorded(deps.store.update_request(record_id, state="failed", error=detail))
    CLICKS.labels("wait", "nexthink_refused").inc()
    await _audit(deps, choice, record_id, "refused", f"Nexthink refused: {detail}")
    await deps.notifier.wait_changed(done or wait, _news(choice, "refused", at=now, detail=detail))


async def _unclear(
    deps: WaitDeps, choice: _Choice, record_id: str, exc: NexthinkError, now: datetime
) -> None:
    wait = choice.wait
    assert wait.claim_token is not None
    retry_note = f"{type(exc).__name__} at {now.isoformat(timespec='seconds')}: {exc.message}"
    released = await _recorded(deps.store.release_wait(wait.id, wait.claim_token, retry_note))
    state = "unknown" if may_have_run(exc) else "failed"
    await _recorded(deps.store.update_request(record_id, state=state, error=retry_note))
    CLICKS.labels("wait", "nexthink_error").inc()
    await _audit(deps, choice, record_id, state, f"{exc.summary}; the question is open again")
    current = released or wait
    news = _news(choice, "unclear", detail=exc.summary, mention=await mention_of(deps, current))
    await deps.notifier.wait_changed(current, news)


async def _interrupted(deps: WaitDeps, choice: _Choice, record_id: str, now: datetime) -> None:
    """The bot is stopping and gave up on this trigger: whether it reached Nexthink is unknown.
    Give the question back (else it stays claimed for good, "being decided" by nobody) so that
    an approver can try again once a bot is running."""
    wait = choice.wait
    assert wait.claim_token is not None
    retry_note = f"interrupted at {now.isoformat(timespec='seconds')}: the bot stopped"
    released = await deps.store.release_wait(wait.id, wait.claim_token, retry_note)
    await deps.store.update_request(record_id, state="unknown", error=retry_note)
    await _audit(deps, choice, record_id, "unknown", f"{retry_note}; the question is open again")
    current = released or wait
    news = _news(choice, "interrupted", mention=await mention_of(deps, current))
    await deps.notifier.wait_changed(current, news)


async def _audit(deps: WaitDeps, choice: _Choice, record_id: str, result: str, detail: str) -> None:
    """``question_decided``: who chose which option, and what became of it (``result``:
    ``decided``, ``refused`` by Nexthink, or ``failed``/``unknown`` with the question reopened)."""
    await deps.audit.record_wait(
        "question_decided",
        choice.wait,
        actor=choice.user_id,
        actor_upn=choice.upn,
        params={
            "question_id": choice.wait.id,
            "option": choice.option.label,
            "parameters": dict(choice.option.parameters),
            "question": choice.wait.text,
            **({"for_user": choice.for_user_id} if choice.for_user_id else {}),
        },
        request_id=record_id,
        result=result,
        detail=f"{detail}; for {choice.for_user_id}, as their stand-in"
        if choice.for_user_id
        else detail,
    )


async def _recorded(step: Awaitable[T]) -> T | None:
    """A store write once Nexthink was called: if the database went away meanwhile, the
    outcome is still shown in Slack and logged, rather than lost with a failed task (a claim left
    behind is released by the stale-claim sweep)."""
    try:
        return await step
    except StoreError as exc:
        log.error("decision_not_recorded", error=str(exc))
        return None
