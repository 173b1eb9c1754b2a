"""The one run path: every run (command, form, Home tab, shortcuts) goes through here.

``run_and_reply`` prepares the run in the core (policy, limits, targets), then
``execute_and_reply`` either asks for approval (``request_approval``), asks the people it targets
for their consent (``bot.consent.ask``, for a workflow with ``consent:``), or executes it and
hands the result to ``handlers.delivery``, which posts it where the outcome can follow. A run
asked for later (``at …``/``in …``, the form's When) goes through ``schedule_and_reply`` instead
(``bot.schedules.ask``: the same checks, then kept for its time).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid

from bot import approvals, consent, fleet, reminders, schedules
from bot.logging import get_logger
from bot.metrics import COMMANDS
from bot.nexthink.errors import NexthinkError
from bot.runs import PreparedRun, Refusal, Requester, RunRequest, RunResult
from bot.schedule_times import When
from bot.store import StoreError
from handlers import views
from handlers.approval_views import not_posted_message, pending_message
from handlers.blocks import code, outside
from handlers.delivery import announce_approval, deliver_run_result, reply
from handlers.fleet_views import preview_message
from handlers.schedule_views import scheduled_message
from handlers.services import Services

__all__ = [
    "execute_and_reply",
    "offer_fleet_run",
    "request_approval",
    "run_and_reply",
    "schedule_and_reply",
]

log = get_logger(__name__)


def _metric_name(source: str) -> str:
    """Runs are counted as ``run`` from the command, else by where they came from (``modal``,
    ``home``, ``shortcut``, ``approval``)."""
    return "run" if source == "command" else source


async def run_and_reply(
    bot: Services,
    requester: Requester,
    request: RunRequest,
    *,
    response_url: str | None,
    visible: bool = False,
) -> RunResult | None:
    """The one run path (command, modal, Home, shortcut): prepare, execute, tell the requester.
    ``visible`` (the command's ``visible`` word) posts the run in the channel. A fleet run
    (``query:#id``) is shown first with Run and Cancel (``offer_fleet_run``)."""
    kind = _metric_name(request.source)
    try:
        prepared = await bot.runner.prepare(requester, request)
        if visible and not prepared.visible:
            prepared = dataclasses.replace(prepared, visible=True)
    except Refusal as exc:
        COMMANDS.labels(kind, "refused").inc()
        await reply(
            bot,
            views.refusal_message(exc.message, exc.hint),
            user_id=requester.user_id,
            channel_id=requester.channel_id,
            response_url=response_url,
        )
        return None
    except NexthinkError as exc:
        if request.query is None:
            raise
        COMMANDS.labels(kind, "nexthink_error").inc()
        action = f"Reading the targets of the query {code(outside(request.query))}"
        await reply(
            bot,
            views.error_message(exc, action=action),
            user_id=requester.user_id,
            channel_id=requester.channel_id,
            response_url=response_url,
        )
        return None
    if prepared.fleet is not None:
        await offer_fleet_run(bot, prepared, response_url=response_url)
        return None
    return await execute_and_reply(bot, prepared, response_url=response_url)


async def offer_fleet_run(
    bot: Services, prepared: PreparedRun, *, response_url: str | None
) -> None:
    """A fleet run's preview: the count and a sample, with Run and Cancel; nothing runs yet."""
    record = await fleet.propose(bot.store, prepared, response_url=response_url)
    COMMANDS.labels(_metric_name(prepared.source), "fleet_preview").inc()
    await reply(
        bot,
        preview_message(prepared, record),
        user_id=prepared.requester.user_id,
        channel_id=prepared.requester.channel_id,
        response_url=response_url,
    )


async def execute_and_reply(
    bot: Services, prepared: PreparedRun, *, response_url: str | None, replace: bool = False
) -> RunResult | None:
    """Ask for approval or execute, and tell the requester; ``replace``: the first answer through
    ``response_url`` replaces the message that URL belongs to (a fleet run's preview)."""
    requester = prepared.requester
    kind = _metric_name(prepared.source)
    try:
        if prepared.approval is not None:  # approval first; consent is asked once approved
            await request_approval(bot, prepared, response_url=response_url, replace=replace)
            COMMANDS.labels(kind, "approval_requested").inc()
            return None
        if prepared.asking:  # each person allows it first; the rest runs now
            asked = await consent.ask(bot, prepared, response_url=response_url)
            COMMANDS.labels(kind, "consent_asked").inc()
            if asked.rest is None:
                return None
            prepared = asked.rest
        result = await bot.runner.run(prepared)
    except asyncio.CancelledError:
        # the bot is stopping and gave up on this run: say so rather than go silent
        COMMANDS.labels(kind, "interrupted").inc()
        with contextlib.suppress(Exception):  # Slack unreachable, or cancelled once more
            await asyncio.wait_for(
                reply(
                    bot,
                    views.interrupted_message(prepared.entry.id),
                    user_id=requester.user_id,
                    channel_id=requester.channel_id,
                    response_url=response_url,
                ),
                timeout=1.0,
            )
        raise
    except StoreError as exc:  # the request is recorded before the execute: nothing was sent
        COMMANDS.labels(kind, "store_unavailable").inc()
        log.error("run_store_unavailable", error=str(exc))
        await reply(
            bot,
            views.store_unavailable_message(),
            user_id=requester.user_id,
            channel_id=requester.channel_id,
            response_url=response_url,
        )
        return None
    except Exception:
        COMMANDS.labels(kind, "crashed").inc()
        ref = uuid.uuid4().hex[:8]
        log.exception("run_failed", ref=ref)
        await reply(
            bot,
            views.internal_error_message(ref),
            user_id=requester.user_id,
            channel_id=requester.channel_id,
            response_url=response_url,
        )
        return None
    message = views.run_result_message(result)
    COMMANDS.labels(kind, "ok" if result.ok else "nexthink_error").inc()
    # posted where it can be updated, then followed until the executions end (handlers.delivery)
    await deliver_run_result(bot, result, message, response_url=response_url, replace=replace)
    return result


async def request_approval(
    bot: Services, prepared: PreparedRun, *, response_url: str | None, replace: bool = False
) -> None:
    """For workflows that need approval: ask, and tell the requester."""
    try:
        approval = await approvals.request(bot, prepared, response_url=response_url)
    except approvals.ApprovalNotPosted as exc:
        await reply(
            bot,
            not_posted_message(exc),
            user_id=prepared.requester.user_id,
            channel_id=prepared.requester.channel_id,
            response_url=response_url,
            replace=replace,
        )
        return
    try:
        waiting = await reminders.waiting_on(
            bot, approval.approvers, requester_id=approval.requester_id
        )
    except Exception:  # whom it waits on is a courtesy: the approvers as configured then
        waiting = []
    # a visible run gets its channel entry now; its thread then carries the decision
    await announce_approval(
        bot,
        prepared,
        approval,
        views.text_message(pending_message(prepared, approval, waiting)),
        response_url=response_url,
        replace=replace,
    )


async def schedule_and_reply(
    bot: Services,
    requester: Requester,
    request: RunRequest,
    when: When,
    *,
    response_url: str | None,
    visible: bool = False,
) -> schedules.Scheduled | None:
    """A run asked for later, from any path: check and keep it, then tell the requester."""
    kind = "schedule"
    scheduled: schedules.Scheduled | None = None
    try:
        scheduled = await schedules.ask(bot, requester, request, when, visible=visible)
    except Refusal as exc:
        COMMANDS.labels(kind, "refused").inc()
        message = views.refusal_message(exc.message, exc.hint)
    except approvals.ApprovalNotPosted as exc:
        COMMANDS.labels(kind, "approval_not_posted").inc()
        message = not_posted_message(exc)
    except StoreError as exc:
        COMMANDS.labels(kind, "store_unavailable").inc()
        log.error("schedule_store_unavailable", error=str(exc))
        message = views.store_unavailable_message()
    else:
        COMMANDS.labels(kind, "ok").inc()
        message = scheduled_message(scheduled)
        if bot.schedule_loop is not None:
            bot.schedule_loop.wake()
    await reply(
        bot,
        message,
        user_id=requester.user_id,
        channel_id=requester.channel_id,
        response_url=response_url,
    )
    return scheduled
