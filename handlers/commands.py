"""``/nexthink``: parse the text, acknowledge at once, do the work, reply.

The text is parsed before the acknowledgement (it is local and fast), so mistakes and ``help``
are answered in the acknowledgement itself. Everything that talks to Nexthink or Slack runs
after it, in a tracked task.
"""

from __future__ import annotations

import uuid
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError

from bot import delegation, waits
from bot.catalogue import Entry
from bot.delegation import DelegationAnswer
from bot.logging import get_logger
from bot.metrics import COMMANDS
from bot.nexthink.errors import NexthinkError
from bot.runs import HistoryFilter, Refusal, Requester, RunRequest
from bot.store import StoreError
from handlers import ids, views
from handlers.delivery import reply
from handlers.grammar import (
    HELP,
    Cancel,
    Delegate,
    GrammarError,
    Help,
    History,
    Info,
    ListWorkflows,
    OpenModal,
    Resume,
    Run,
    Scheduled,
    parse,
    usage,
)
from handlers.history_views import history_message
from handlers.modals import open_run_modal
from handlers.nudge_views import delegation_text, stand_in_message
from handlers.running import run_and_reply, schedule_and_reply
from handlers.schedules import answer_cancel, answer_scheduled
from handlers.services import Services
from handlers.wait_views import click_refusal_text, resumed_by_question_text

__all__ = ["register"]

log = get_logger(__name__)


def register(bot: Services) -> None:
    @bot.app.command(ids.COMMAND)
    async def on_nexthink(ack: AsyncAck, body: dict[str, Any]) -> None:
        requester = Requester(
            user_id=str(body.get("user_id", "")),
            team_id=body.get("team_id"),
            channel_id=body.get("channel_id"),
            enterprise_id=body.get("enterprise_id") or None,
        )
        response_url = body.get("response_url")
        try:
            command = parse(str(body.get("text") or ""))
        except GrammarError as exc:
            COMMANDS.labels("invalid", "refused").inc()
            await ack(response_type="ephemeral", **views.usage_message(exc.problem, exc.usage))
            return
        name = type(command).__name__.lower()
        if bot.tasks.closing:
            COMMANDS.labels(name, "unavailable").inc()
            await ack(
                response_type="ephemeral",
                **views.text_message(
                    ":construction: The bot is restarting; please try again in a few seconds."
                ),
            )
            return
        if isinstance(command, Help):
            COMMANDS.labels("help", "ok").inc()
            text = usage(command.topic) if command.topic else HELP
            await ack(response_type="ephemeral", **views.text_message(text))
            return
        if isinstance(command, OpenModal):
            await ack()
            bot.tasks.spawn(
                open_run_modal(bot, str(body.get("trigger_id", "")), requester, response_url),
                name="open_modal",
            )
            return
        # the answer follows through the response_url as soon as Nexthink has answered
        await ack()
        bot.tasks.spawn(_answer(bot, command, requester, response_url), name=name, after_acks=True)


async def _answer(
    bot: Services, command: Any, requester: Requester, response_url: str | None
) -> None:
    name = type(command).__name__.lower()
    try:
        if isinstance(command, ListWorkflows):
            principal = await bot.runner.admit(requester)
            entries = await bot.runner.entries(principal, requester.channel_id)
            if command.filter:
                entries = [e for e in entries if e.matches(command.filter)]
            message = views.list_message(entries, command.filter)
        elif isinstance(command, Info):
            principal = await bot.runner.admit(requester)
            entry = await bot.runner.find(principal, requester.channel_id, command.workflow)
            details = await bot.nexthink.get_workflow(entry.id)
            if details is not None:
                entry = Entry(
                    details.model_copy(update={"dependency": entry.workflow.dependency}),
                    entry.alias,
                )
            message = views.info_message(entry)
        elif isinstance(command, Run):
            request = RunRequest(
                workflow=command.workflow,
                users=tuple(command.users),
                devices=tuple(command.devices),
                params=dict(command.params),
                source="command",
                ticket=command.ticket,
                query=command.query,
            )
            if command.when is not None:
                await schedule_and_reply(
                    bot,
                    requester,
                    request,
                    command.when,
                    response_url=response_url,
                    visible=command.visible,
                )
                return
            await run_and_reply(
                bot, requester, request, response_url=response_url, visible=command.visible
            )
            return
        elif isinstance(command, Resume):
            message = await _resume(bot, command, requester)
        elif isinstance(command, History):
            about = HistoryFilter(
                user_id=command.user.value
                if command.user and command.user.kind == "mention"
                else None,
                upn=command.user.value if command.user and command.user.kind == "upn" else None,
                workflow=command.workflow,
                ticket=command.ticket,
            )
            message = history_message(await bot.runner.history(requester, about))
        elif isinstance(command, Delegate):
            answered = await _delegate(bot, command, requester)
            message = views.text_message(delegation_text(answered))
            await _tell_stand_in(bot, answered)
        elif isinstance(command, Scheduled):
            message = await answer_scheduled(bot, requester, command.user_id)
        elif isinstance(command, Cancel):
            message = await answer_cancel(bot, requester, command.schedule_id)
        else:  # pragma: no cover - the grammar has no other commands
            raise TypeError(f"unhandled command {command!r}")
        COMMANDS.labels(name, "ok").inc()
    except Refusal as exc:
        COMMANDS.labels(name, "refused").inc()
        message = views.refusal_message(exc.message, exc.hint)
    except NexthinkError as exc:
        COMMANDS.labels(name, "nexthink_error").inc()
        message = views.error_message(exc, action=_ACTIONS.get(name, "The request"))
    except StoreError as exc:  # before anything was sent: the run path records first
        COMMANDS.labels(name, "store_unavailable").inc()
        log.error("command_store_unavailable", command=name, error=str(exc))
        message = views.store_unavailable_message()
    except Exception:
        COMMANDS.labels(name, "crashed").inc()
        ref = uuid.uuid4().hex[:8]
        log.exception("command_failed", ref=ref, command=name)
        message = views.internal_error_message(ref)
    await reply(
        bot,
        message,
        user_id=requester.user_id,
        channel_id=requester.channel_id,
        response_url=response_url,
    )


async def _resume(bot: Services, command: Resume, requester: Requester) -> dict[str, Any]:
    """``/nexthink resume``: through the execution's question when it has one (``bot.waits``)."""
    done = await waits.resume(
        bot, requester, command.workflow_uuid, command.execution_uuid, dict(command.params)
    )
    if done.wait is not None:
        if done.refused is not None:
            return views.text_message(click_refusal_text(done.refused))
        return views.text_message(resumed_by_question_text(done.wait))
    result = done.result
    assert result is not None
    if result.error is not None:
        return views.error_message(
            result.error,
            action="Resuming the execution",
            details=[
                ("Workflow", f"`{result.workflow_uuid}`"),
                ("Execution", f"`{result.execution_uuid}`"),
            ],
            record_id=result.record.id,
        )
    return views.resume_message(
        workflow_uuid=result.workflow_uuid,
        execution_uuid=result.execution_uuid,
        params=result.params,
        request_uuids=result.request_uuids,
    )


async def _tell_stand_in(bot: Services, answer: DelegationAnswer) -> None:
    """A direct message to the person just named as a stand-in (a failure is only logged)."""
    told = stand_in_message(answer)
    if told is None or answer.delegation is None:
        return
    try:
        await bot.slack.chat_postMessage(channel=answer.delegation.stand_in_id, **told)
    except SlackApiError as exc:
        log.info("stand_in_not_told", error=exc.response.get("error"))


async def _delegate(bot: Services, command: Delegate, requester: Requester) -> DelegationAnswer:
    if command.action == "show":
        return await delegation.show(bot, requester.user_id)
    if command.action == "off":
        return await delegation.end(bot, requester.user_id)
    target = command.stand_in
    assert target is not None
    return await delegation.set_stand_in(
        bot,
        requester.user_id,
        stand_in_id=target.value if target.kind == "mention" else None,
        stand_in_upn=target.value if target.kind == "upn" else None,
        until=command.until,
        team_id=requester.team_id,
    )


_ACTIONS = {
    "listworkflows": "Listing workflows",
    "info": "Reading the workflow",
    "resume": "Resuming the execution",
}
