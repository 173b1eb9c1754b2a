"""The Slack side of ``bot.notifier.Notifier``: what the core reports, shown in Slack.

Each report becomes a message from the views (``wait_views``, ``approval_views``,
``outcome_views``) and is sent through ``handlers.delivery``, in the Slack of the workspace the
record was made in (``bot.workspaces.working_in``): a sweep, a follow-up or an approver in
another workspace reaches the requester with the requester's installation.
"""

from __future__ import annotations

import dataclasses

from slack_sdk.errors import SlackApiError

from bot import followups
from bot.followups import Progress
from bot.logging import get_logger
from bot.notifier import (
    ApprovalNews,
    ConsentNews,
    NotPosted,
    Reminder,
    RequesterNews,
    RoundView,
    ScheduleNews,
    WaitNews,
)
from bot.runs import RunResult
from bot.store import ApprovalRecord, ConsentRecord, RequestRecord, ScheduleRecord, WaitRecord
from bot.workspaces import of, working_in
from handlers import delivery
from handlers.approval_views import (
    approval_message,
    approval_news_message,
    requester_news_message,
)
from handlers.blocks import Message, outside
from handlers.consent_reply import show_round
from handlers.consent_views import (
    consent_message,
    consent_news_message,
    requester_consent_message,
)
from handlers.nudge_views import reminder_message
from handlers.schedule_views import schedule_news_message, with_schedule
from handlers.services import Services
from handlers.views import run_result_message
from handlers.wait_views import wait_message, wait_news_message

__all__ = ["SlackNotifier"]

log = get_logger(__name__)


class SlackNotifier:
    def __init__(self, services: Services) -> None:
        self._s = services

    async def _ask(self, channel: str, message: Message) -> tuple[str, str]:
        try:
            posted = await self._s.slack.chat_postMessage(channel=channel, **message)
        except SlackApiError as exc:
            raise NotPosted(str(exc.response.get("error"))) from None
        return str(posted.get("channel") or channel), str(posted.get("ts"))

    async def ask_wait(
        self, wait: WaitRecord, channel: str, mention: str | None
    ) -> tuple[str, str]:
        with working_in(of(wait)):
            return await self._ask(channel, wait_message(wait, mention=mention))

    async def withdraw(self, channel: str, ts: str) -> None:
        try:
            await self._s.slack.chat_delete(channel=channel, ts=ts)
        except SlackApiError as exc:
            log.info("delete_failed", error=exc.response.get("error"))

    async def wait_changed(self, wait: WaitRecord, news: WaitNews) -> None:
        if wait.message_channel and wait.message_ts:
            where = (wait.message_channel, wait.message_ts)
            with working_in(of(wait)):
                await delivery.update_message(self._s, where, wait_news_message(wait, news))

    async def ask_approval(
        self, approval: ApprovalRecord, record: RequestRecord, name: str, targets: list[str]
    ) -> tuple[str, str]:
        channel = approval.channel_id or record.channel_id or record.user_id
        message = approval_message(approval, record, workflow_name=outside(name), targets=targets)
        schedule = await self._s.store.schedule_for_request(record.id)
        if schedule is not None:  # a run asked for later: approvers see when it would run
            message = with_schedule(message, schedule)
        with working_in(of(record)):
            return await self._ask(channel, message)

    async def approval_changed(
        self, approval: ApprovalRecord, record: RequestRecord, name: str, news: ApprovalNews
    ) -> None:
        if approval.message_channel and approval.message_ts:
            where = (approval.message_channel, approval.message_ts)
            message = approval_news_message(approval, record, outside(name), news)
            with working_in(of(record)):
                await delivery.update_message(self._s, where, message)

    async def tell_requester(self, record: RequestRecord, news: RequesterNews) -> None:
        with working_in(of(record)):
            await delivery.tell_requester(self._s, record, requester_news_message(record, news))

    async def run_finished(self, result: RunResult) -> None:
        with working_in(of(result.record)):
            await delivery.deliver_run_result(
                self._s,
                result,
                run_result_message(result),
                response_url=result.record.response_url,
            )

    async def remind(self, user_id: str, reminder: Reminder) -> bool:
        with working_in(of(reminder)):
            return await self._remind(user_id, reminder)

    async def _remind(self, user_id: str, reminder: Reminder) -> bool:
        permalink = None
        if reminder.channel and reminder.ts:
            try:
                found = await self._s.slack.chat_getPermalink(
                    channel=reminder.channel, message_ts=reminder.ts
                )
                permalink = str(found.get("permalink") or "") or None
            except SlackApiError as exc:
                log.info("permalink_unavailable", error=exc.response.get("error"))
        try:
            await self._s.slack.chat_postMessage(
                channel=user_id, **reminder_message(reminder, permalink)
            )
        except SlackApiError as exc:
            log.warning("reminder_not_sent", error=exc.response.get("error"))
            return False
        return True

    async def schedule_changed(
        self, schedule: ScheduleRecord, record: RequestRecord, news: ScheduleNews
    ) -> None:
        with working_in(of(record)):  # a scheduled run starts later, from a loop of its own
            await self._schedule_changed(schedule, record, news)

    async def _schedule_changed(
        self, schedule: ScheduleRecord, record: RequestRecord, news: ScheduleNews
    ) -> None:
        name = await self._s.catalogue.display_name(record.workflow_id)
        message = schedule_news_message(schedule, record, news, name)
        result = news.result
        if result is None:
            await delivery.reply(self._s, message, user_id=record.user_id, channel_id=None)
            return
        # hours later the person may not be looking at that channel: a direct message (which
        # the outcome follow-up updates in place), unless the run is posted in its channel
        prepared = result.prepared
        if not prepared.visible:
            requester = dataclasses.replace(prepared.requester, channel_id=None)
            result = dataclasses.replace(
                result, prepared=dataclasses.replace(prepared, requester=requester)
            )
        await delivery.deliver_run_result(self._s, result, message, response_url=None)

    async def outcome_changed(
        self, record: RequestRecord, progress: Progress, changed: list[str]
    ) -> Progress:
        with working_in(of(record)):
            return await delivery.show_outcome(self._s, record, progress, changed=changed)

    # -- consent ----------------------------------------------------------------------------

    async def ask_consent(
        self, consent: ConsentRecord, record: RequestRecord, name: str
    ) -> tuple[str, str]:
        with working_in(of(record)):
            message = consent_message(consent, record, outside(name))
            return await self._ask(consent.user_id, message)

    async def consent_round(self, view: RoundView, *, first: bool = False) -> None:
        with working_in(of(view.round)):  # the requester's Slack, whoever's click it follows
            await show_round(self._s, view, first=first)

    async def consent_run_finished(self, result: RunResult) -> None:
        with working_in(of(result.record)):
            if result.prepared.visible:  # posted in its channel, as the run path does
                message = run_result_message(result)
                await delivery.deliver_run_result(self._s, result, message, response_url=None)
            elif result.ok:  # its round shows it sent; Nexthink's outcome follows
                await followups.track(self._s, result.record)

    async def consent_changed(
        self, consent: ConsentRecord, record: RequestRecord, name: str, news: ConsentNews
    ) -> None:
        with working_in(of(record)):  # a sweep's expiry comes from a loop of its own
            if consent.message_channel and consent.message_ts:
                where = (consent.message_channel, consent.message_ts)
                message = consent_news_message(consent, record, outside(name), news)
                await delivery.update_message(self._s, where, message)
            told = requester_consent_message(consent, record, outside(name), news)
            if told is None:
                return
            if consent.round_id is None:  # asked before rounds: told one by one, as then
                await delivery.tell_requester(self._s, record, told)
            else:  # the round's reply shows it; a visible run's thread gets the line too
                await delivery.tell_thread(self._s, record, told)
