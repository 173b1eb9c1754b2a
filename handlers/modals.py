"""The run modal: opened by ``/nexthink`` (or a shortcut), refreshed when a workflow is
chosen, and submitted into exactly the same run path as ``/nexthink run``.

Slack gives a trigger 3 seconds, so the modal opens at once with a loading view and is filled
in by ``views.update`` once the person's workflows are known. On submit, mistakes are shown
inline (``response_action: errors``) when the checks finish within 2 seconds; otherwise the
modal closes and the answer arrives as a message.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date, time
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError

from bot.catalogue import Entry
from bot.forms import TAMPERED, TamperedForm
from bot.logging import get_logger
from bot.metrics import COMMANDS
from bot.nexthink.errors import NexthinkError
from bot.nexthink.models import is_uuid
from bot.runs import PreparedRun, Refusal, Requester, RunRequest
from bot.schedule_times import At, When
from handlers import ids, views
from handlers.delivery import reply
from handlers.grammar import DeviceTarget, UserTarget
from handlers.modal_views import ModalState, loading_view, message_view, run_view
from handlers.payloads import enterprise_id, first_action, obj, team_id, text, user_id
from handlers.running import execute_and_reply, schedule_and_reply
from handlers.services import Services

__all__ = ["open_run_modal", "parse_submission", "register"]

log = get_logger(__name__)

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_INLINE_WAIT = 2.0  # seconds to wait for the checks before closing the modal without them


async def open_run_modal(
    bot: Services,
    trigger_id: str,
    requester: Requester,
    response_url: str | None,
    *,
    users: tuple[str, ...] = (),
) -> None:
    state = ModalState(
        requester.channel_id,
        response_url,
        users=users,
        seal=bot.forms,
        user_id=requester.user_id,
    )
    try:
        opened = await bot.slack.views_open(trigger_id=trigger_id, view=loading_view(state))
    except SlackApiError as exc:
        log.warning("modal_open_failed", error=exc.response.get("error"))
        await reply(
            bot,
            views.refusal_message(
                "Slack did not let the form open in time. Please try `/nexthink` again."
            ),
            user_id=requester.user_id,
            channel_id=requester.channel_id,
            response_url=response_url,
        )
        return
    view = opened.get("view") or {}
    await _fill(
        bot,
        requester,
        state,
        view_id=str(view.get("id")),
        view_hash=view.get("hash"),
        selected_id=None,
    )


async def _fill(
    bot: Services,
    requester: Requester,
    state: ModalState,
    *,
    view_id: str,
    view_hash: str | None,
    selected_id: str | None,
) -> None:
    try:
        principal = await bot.runner.principal(requester)
        entries = await bot.runner.entries(principal, requester.channel_id)
    except Refusal as exc:
        content = message_view(f":no_entry: {exc.message}")
    except NexthinkError as exc:
        content = message_view(views.error_message(exc, action="Listing workflows")["text"])
    else:
        selected = next((e for e in entries if e.id == selected_id), None)
        if selected is None and len(entries) == 1:
            selected = entries[0]
        state.workflow = selected.id if selected else None
        may_target = any(
            bot.policy.may_target_others(principal, requester.channel_id, e.id)
            for e in ([selected] if selected else entries)
        )
        devices = bot.runner.devices
        mine = None
        if not may_target and devices.enabled and principal.upn:
            mine = await devices.of(principal.upn)  # a person with several: a device menu
        content = run_view(
            state,
            entries,
            selected=selected,
            may_target_others=may_target,
            param_choices=_param_choices(bot, selected),
            other_params=_takes_other_params(bot, selected),
            my_devices=mine.devices if mine is not None else (),
            schedulable=_schedulable(bot, selected, entries),
        )
    try:
        kwargs: dict[str, Any] = {"view_id": view_id, "view": content}
        if view_hash:
            kwargs["hash"] = view_hash
        await bot.slack.views_update(**kwargs)
    except SlackApiError as exc:  # closed meanwhile, or a newer update won
        log.info("modal_update_skipped", error=exc.response.get("error"))


def _schedulable(bot: Services, selected: Entry | None, entries: list[Entry]) -> bool:
    """Whether the form offers a When: the selected workflow (or, none chosen, any) may be
    scheduled."""
    return any(bot.policy.may_schedule(e.id).allowed for e in ([selected] if selected else entries))


def parse_when(values: dict[str, Any]) -> tuple[When | None, dict[str, str]]:
    """The form's When (date and time pickers), or None to run now; or the inline error."""

    def picked(block: str, key: str) -> str:
        found = values.get(block) or {}
        item = obj(next(iter(found.values()), {})) if isinstance(found, dict) else {}
        return text(item.get(key))

    day_text = picked(ids.MODAL_WHEN_DATE_BLOCK, "selected_date")
    clock_text = picked(ids.MODAL_WHEN_TIME_BLOCK, "selected_time")
    if not day_text and not clock_text:
        return None, {}
    if not clock_text:
        return None, {ids.MODAL_WHEN_TIME_BLOCK: "Pick a time too (or clear the date)."}
    try:
        clock = time.fromisoformat(clock_text)
        day = date.fromisoformat(day_text) if day_text else None
    except ValueError:
        block = ids.MODAL_WHEN_TIME_BLOCK if day_text else ids.MODAL_WHEN_DATE_BLOCK
        return None, {block: "Pick the date and time with the pickers."}
    typed = f"at {day_text} {clock_text}" if day else f"at {clock_text}"
    return At(clock, day, typed), {}


def _takes_other_params(bot: Services, entry: Entry | None) -> bool:
    """False when the policy declares the workflow's complete list of parameters."""
    rule = bot.policy.rule_for(entry.id) if entry is not None else None
    return rule is None or rule.params is None


def _param_choices(
    bot: Services, entry: Entry | None
) -> dict[str, tuple[tuple[str, ...], str | None]]:
    if entry is None:
        return {}
    choices: dict[str, tuple[tuple[str, ...], str | None]] = {}
    for name, spec in bot.policy.param_specs(entry.id).items():
        choices[name] = (tuple(spec.allowed or ()), spec.default)
    for name in entry.workflow.parameters:
        choices.setdefault(name, ((), None))
    return choices


def parse_submission(values: dict[str, Any]) -> tuple[RunRequest | None, dict[str, str]]:
    """``view.state.values`` → a run request, or the inline errors by block id."""
    errors: dict[str, str] = {}

    def element(block: str) -> dict[str, Any]:
        found = values.get(block) or {}
        return obj(next(iter(found.values()), {})) if isinstance(found, dict) else {}

    chosen = text(obj(element(ids.MODAL_WORKFLOW_BLOCK).get("selected_option")).get("value"))
    if not chosen:
        errors[ids.MODAL_WORKFLOW_BLOCK] = "Choose a workflow."
    selected_users = element(ids.MODAL_USERS_BLOCK).get("selected_users")
    users = tuple(
        UserTarget(kind="mention", value=u)
        for u in (selected_users if isinstance(selected_users, list) else [])
        if isinstance(u, str) and u
    )
    devices: list[DeviceTarget] = []
    mine = text(obj(element(ids.MODAL_MY_DEVICE_BLOCK).get("selected_option")).get("value"))
    if mine:  # one of the person's own devices; the core checks that it is theirs
        if is_uuid(mine):
            devices.append(DeviceTarget(kind="collector_uid", value=mine.lower()))
        else:
            devices.append(DeviceTarget(kind="name", value=mine))
    for number, line in enumerate(
        text(element(ids.MODAL_DEVICES_BLOCK).get("value")).splitlines(), 1
    ):
        name = line.strip()
        if not name:
            continue
        if len(name) > 255 or any(ord(c) < 32 for c in name):
            errors[ids.MODAL_DEVICES_BLOCK] = (
                f"Line {number}: a device name has at most 255 characters."
            )
            break
        if is_uuid(name):  # as the command's grammar does: a collectorUid is lower case
            devices.append(DeviceTarget(kind="collector_uid", value=name.lower()))
        else:
            devices.append(DeviceTarget(kind="name", value=name))
    params: dict[str, str] = {}
    for block, content in values.items():
        if not block.startswith(ids.MODAL_PARAM_PREFIX):
            continue
        item = obj(next(iter(content.values()), {})) if isinstance(content, dict) else {}
        value = text(obj(item.get("selected_option")).get("value")) or text(item.get("value"))
        name = block.removeprefix(ids.MODAL_PARAM_PREFIX)
        if not _KEY.match(name):  # a block id the bot did not write (the form was altered)
            errors[ids.MODAL_WORKFLOW_BLOCK] = TAMPERED
            break
        if value:
            params[name] = value
    for number, line in enumerate(
        text(element(ids.MODAL_PARAMS_BLOCK).get("value")).splitlines(), 1
    ):
        if not line.strip():
            continue
        key, sep, value = line.strip().partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.match(key) or not value:
            errors[ids.MODAL_PARAMS_BLOCK] = (
                f"Line {number}: write one key=value per line, e.g. mode=soft."
            )
            break
        if key in params:
            errors[ids.MODAL_PARAMS_BLOCK] = f"Line {number}: `{key}` is given twice."
            break
        params[key] = value
    if errors or not chosen:
        return None, errors
    return RunRequest(
        workflow=str(chosen), users=users, devices=tuple(devices), params=params, source="modal"
    ), {}


def _error_block(exc: Refusal, values: dict[str, Any]) -> str:
    field = exc.field
    if field == "targets":
        for block in (ids.MODAL_USERS_BLOCK, ids.MODAL_DEVICES_BLOCK):
            if block in values:
                return block
    if field and field.startswith("param:") and field in values:
        return field
    if field in {"params", "param"} or (field and field.startswith("param:")):
        return (
            ids.MODAL_PARAMS_BLOCK if ids.MODAL_PARAMS_BLOCK in values else ids.MODAL_WORKFLOW_BLOCK
        )
    return ids.MODAL_WORKFLOW_BLOCK


def register(bot: Services) -> None:
    app = bot.app

    @app.action(ids.MODAL_WORKFLOW)
    async def on_workflow_chosen(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        view = obj(body.get("view"))
        if not text(view.get("id")):  # no form to refresh
            return
        try:
            state = ModalState.load(
                view.get("private_metadata"), seal=bot.forms, user_id=user_id(body)
            )
        except TamperedForm:
            COMMANDS.labels("modal", "tampered").inc()
            log.warning("form_tampered", form="run", user=user_id(body))
            bot.tasks.spawn(_say_tampered(bot, text(view.get("id"))), name="modal_refresh")
            return
        selected = text(obj(first_action(body).get("selected_option")).get("value")) or None
        requester = Requester(
            user_id=user_id(body),
            team_id=team_id(body),
            channel_id=state.channel_id,
            enterprise_id=enterprise_id(body),
        )
        bot.tasks.spawn(
            _fill(
                bot,
                requester,
                state,
                view_id=text(view.get("id")),
                view_hash=text(view.get("hash")) or None,
                selected_id=selected,
            ),
            name="modal_refresh",
        )

    @app.action(ids.MODAL_USERS)
    @app.action(ids.MODAL_PARAMS)
    @app.action(ids.MODAL_MY_DEVICE)
    async def on_field_changed(ack: AsyncAck) -> None:
        await ack()

    @app.view(ids.RUN_MODAL)
    async def on_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        view = obj(body.get("view"))
        values = obj(obj(view.get("state")).get("values"))
        try:
            state = ModalState.load(
                view.get("private_metadata"), seal=bot.forms, user_id=user_id(body)
            )
        except TamperedForm:
            COMMANDS.labels("modal", "tampered").inc()
            log.warning("form_tampered", form="run", user=user_id(body))
            await ack(response_action="update", view=message_view(f":no_entry: {TAMPERED}"))
            return
        requester = Requester(
            user_id=user_id(body),
            team_id=team_id(body),
            channel_id=state.channel_id,
            enterprise_id=enterprise_id(body),
        )
        request, errors = parse_submission(values)
        when, when_errors = parse_when(values)
        if request is None or when_errors:
            COMMANDS.labels("modal", "invalid").inc()
            await ack(response_action="errors", errors={**errors, **when_errors})
            return
        if when is not None:  # for later: checked and kept, the answer as a reply
            await ack()
            bot.tasks.spawn(
                schedule_and_reply(bot, requester, request, when, response_url=state.response_url),
                name="modal_schedule",
            )
            return
        preparing = bot.tasks.spawn(_prepare(bot, requester, request), name="modal_prepare")
        done, _ = await asyncio.wait({preparing}, timeout=_INLINE_WAIT)
        if not done:
            await ack()
            bot.tasks.spawn(_finish_late(bot, preparing, requester, state), name="modal_run")
            return
        try:
            prepared = _prepared(preparing.result())
        except Refusal as exc:
            COMMANDS.labels("modal", "refused").inc()
            await ack(
                response_action="errors", errors={_error_block(exc, values): exc.message[:300]}
            )
            return
        except NexthinkError as exc:
            COMMANDS.labels("modal", "nexthink_error").inc()
            await ack(
                response_action="errors",
                errors={
                    ids.MODAL_WORKFLOW_BLOCK: views.error_message(
                        exc, action="Checking the workflow"
                    )["text"][:300]
                },
            )
            return
        await ack()
        bot.tasks.spawn(
            execute_and_reply(bot, prepared, response_url=state.response_url), name="modal_run"
        )


_Prepared = PreparedRun | Refusal | NexthinkError


async def _say_tampered(bot: Services, view_id: str) -> None:
    try:
        await bot.slack.views_update(view_id=view_id, view=message_view(f":no_entry: {TAMPERED}"))
    except SlackApiError as exc:
        log.info("modal_update_skipped", error=exc.response.get("error"))


async def _prepare(bot: Services, requester: Requester, request: RunRequest) -> _Prepared:
    """``Runner.prepare`` in a tracked task: an expected refusal is returned, not raised, since a
    background task that raises is counted (and logged) as a bug."""
    try:
        return await bot.runner.prepare(requester, request)
    except (Refusal, NexthinkError) as exc:
        return exc


def _prepared(outcome: _Prepared) -> PreparedRun:
    if isinstance(outcome, (Refusal, NexthinkError)):
        raise outcome
    return outcome


async def _finish_late(
    bot: Services, preparing: asyncio.Task[_Prepared], requester: Requester, state: ModalState
) -> None:
    try:
        prepared = _prepared(await preparing)
    except Refusal as exc:
        await reply(
            bot,
            views.refusal_message(exc.message, exc.hint),
            user_id=requester.user_id,
            channel_id=requester.channel_id,
            response_url=state.response_url,
        )
        return
    except NexthinkError as exc:
        await reply(
            bot,
            views.error_message(exc, action="Checking the workflow"),
            user_id=requester.user_id,
            channel_id=requester.channel_id,
            response_url=state.response_url,
        )
        return
    await execute_and_reply(bot, prepared, response_url=state.response_url)
