"""Paused executions: Nexthink asks (``POST /nexthink/waits``), Slack answers (a button).

A Nexthink workflow that reaches an "API listener" Wait step calls the webhook from its
Service/API thinklet (10-second timeout). The bot records the wait, posts the question with one
button per option, and answers ``201 {"id", "channel", "ts"}``. A click by an allowed person
claims the wait atomically in the store (so one click wins, across replicas), calls Nexthink's
trigger endpoint once, and updates the message with who decided, when, and Nexthink's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from base64 import b64decode
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from slack_sdk.errors import SlackApiError

from bot.logging import get_logger
from bot.metrics import CLICKS
from bot.nexthink.errors import BadRequest, NexthinkError, may_have_run
from bot.nexthink.models import UPN_PATTERN, UUID_PATTERN
from bot.policy import Principal
from bot.store import ClaimRefusal, StoreError, WaitOption, WaitRecord

if TYPE_CHECKING:
    from bot.app import Bot

__all__ = [
    "MAX_BODY",
    "STALE_AFTER",
    "WaitRequest",
    "decide",
    "post_wait",
    "sweep_expired",
    "sweep_stale",
    "waits_route",
]

log = get_logger(__name__)

#: a wait still claimed after this long was abandoned by a crashed process (one trigger call,
#: with its retries, takes about two minutes at the very most)
STALE_AFTER = timedelta(minutes=10)

T = TypeVar("T")

MAX_BODY = 64 * 1024
_ANSWER_WITHIN = 8.0  # Nexthink's thinklet gives up after 10 s

Uuid = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
Upn = Annotated[str, StringConstraints(pattern=UPN_PATTERN)]
ParamKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]
ParamValue = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Approver = Annotated[
    str,
    StringConstraints(
        pattern=r"^(?:[UW][A-Z0-9]{2,20}|@[a-z0-9._-]{1,80}|" + UPN_PATTERN.strip("^$") + r")$"
    ),
]


class _Option(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Annotated[str, StringConstraints(min_length=1, max_length=75, strip_whitespace=True)]
    style: Literal["primary", "danger"] | None = None
    parameters: dict[ParamKey, ParamValue] = Field(default_factory=dict, max_length=50)


_DEFAULT_OPTIONS = (
    _Option(label="Approve", style="primary", parameters={"decision": "approved"}),
    _Option(label="Deny", style="danger", parameters={"decision": "denied"}),
)


class WaitRequest(BaseModel):
    """The webhook body (PRODUCT.md, "Paused executions"); unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    workflow_uuid: Uuid = Field(alias="workflowUuid")
    execution_uuid: Uuid = Field(alias="executionUuid")
    channel: Annotated[str, StringConstraints(pattern=r"^[CGD][A-Z0-9]{2,30}$")] | None = None
    user: Upn | None = None
    text: Annotated[str, StringConstraints(min_length=1, max_length=2900)]
    options: list[_Option] = Field(
        default_factory=lambda: list(_DEFAULT_OPTIONS), min_length=1, max_length=5
    )
    approvers: list[Approver] = Field(default_factory=list, max_length=100)
    approver_parameter: ParamKey | None = Field(default=None, alias="approverParameter")
    expires_in_minutes: int = Field(default=1440, ge=1, le=43200, alias="expiresInMinutes")
    requester: Upn | None = None

    @model_validator(mode="after")
    def _where(self) -> WaitRequest:
        if self.channel is None and self.user is None:
            raise ValueError("one of channel (a Slack channel id) or user (a UPN) is required")
        return self


class _Reject(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def _authorized(header: str | None, secret: str) -> bool:
    """``Bearer <token>``, or ``Basic`` whose password is the token; compared in constant time."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            value = b64decode(value, validate=True).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.encode(), secret.encode())


#: what a field that breaks its pattern should look like, by field name (the regex means little
#: to the workflow designer who reads the error)
_PATTERN_HINTS = {
    "workflowUuid": "must be a UUID such as 3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a",
    "executionUuid": "must be a UUID such as fecab46b-ee58-b8bc-b61e-912a2dc2bcbc",
    "channel": "must be a Slack channel id such as C0123456789",
    "user": "must be a UPN such as alice@example.com",
    "requester": "must be a UPN such as alice@example.com",
    "approvers": "must be a Slack user id (U0123456789), a UPN or a user-group handle (@it-leads)",
    "approverParameter": "must be a parameter name: a letter or _, then letters, digits, _ . -",
    "parameters": "must be a parameter name: a letter or _, then letters, digits, _ . -",
}


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:3]:
        where = ""
        names = []
        for part in error.get("loc", ()):
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
            if isinstance(part, str):
                names.append(part)
        message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        if error.get("type") == "string_pattern_mismatch":
            hint = next((_PATTERN_HINTS[n] for n in reversed(names) if n in _PATTERN_HINTS), None)
            message = hint or message
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


async def _read_json(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _Reject(413, f"the body is over {MAX_BODY // 1024} KiB")
    # StreamReader.read(n) returns what has arrived so far, not n bytes: read until the end
    body = b""
    while len(body) <= MAX_BODY:
        chunk = await request.content.read(MAX_BODY + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > MAX_BODY:
        raise _Reject(413, f"the body is over {MAX_BODY // 1024} KiB")
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise _Reject(400, "malformed JSON: the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise _Reject(
            400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:  # e.g. 64 KiB of "[": within the size limit, beyond the parser's depth
        raise _Reject(400, "malformed JSON: nested too deeply") from None


async def waits_route(request: web.Request) -> web.Response:
    from bot.server import BOT

    bot = request.app[BOT]
    secret = bot.settings.nexthink_webhook_token
    if secret is None or not secret.get_secret_value():
        return web.json_response(
            {"error": "the waits webhook is disabled: the bot has no NEXTHINK_WEBHOOK_TOKEN"},
            status=503,
        )
    if not _authorized(request.headers.get("Authorization"), secret.get_secret_value()):
        log.warning("waits_unauthorized", remote=request.remote)
        return web.json_response(
            {
                "error": "missing or wrong credential: send Authorization: Bearer <NEXTHINK_WEBHOOK_TOKEN>"
            },
            status=401,
        )
    if bot.tasks.closing:
        return web.json_response({"error": "the bot is shutting down; retry shortly"}, status=503)
    try:
        data = await _read_json(request)
        if not isinstance(data, dict):
            raise _Reject(400, "the body must be a JSON object")
        try:
            wait_request = WaitRequest.model_validate(data)
        except ValidationError as exc:
            raise _Reject(400, _describe(exc)) from None
        # keep answering Nexthink in time; the post finishes in the background if Slack is slow
        work = bot.tasks.spawn(_post_or_reject(bot, wait_request), name="post_wait")
        done, _ = await asyncio.wait({work}, timeout=_ANSWER_WITHIN)
        if not done:
            return web.json_response({"status": "posting", "error": None}, status=202)
        result = work.result()
        if isinstance(result, _Reject):
            raise result
        wait, channel, ts = result
    except _Reject as exc:
        return web.json_response({"error": exc.error}, status=exc.status)
    return web.json_response({"id": wait.id, "channel": channel, "ts": ts}, status=201)


async def _post_or_reject(bot: Bot, req: WaitRequest) -> tuple[WaitRecord, str, str] | _Reject:
    """``post_wait``, with its refusals returned rather than raised (an expected 4xx is not a
    failed background task) and any other failure turned into a JSON answer for Nexthink."""
    try:
        return await post_wait(bot, req)
    except _Reject as exc:
        log.info("wait_refused", status=exc.status, error=exc.error)
        return exc
    except StoreError as exc:
        log.error("wait_not_stored", error=str(exc))
        return _Reject(503, "the bot's database is unavailable; retry shortly")
    except Exception:
        log.exception("wait_post_failed", execution=req.execution_uuid)
        return _Reject(502, "the bot could not post the question to Slack; retry shortly")


#: executions whose question this process is posting, and how many webhooks wait on each
_posting: dict[str, tuple[asyncio.Lock, int]] = {}


@asynccontextmanager
async def _one_post_at_a_time(key: str) -> AsyncIterator[None]:
    """Copies of one execution's webhook arriving together post one after the other, so the later
    ones find the first one's message instead of posting their own (within this process)."""
    lock, users = _posting.get(key, (asyncio.Lock(), 0))
    _posting[key] = (lock, users + 1)
    try:
        async with lock:
            yield
    finally:
        lock, users = _posting[key]
        if users > 1:
            _posting[key] = (lock, users - 1)
        else:
            del _posting[key]


async def post_wait(
    bot: Bot, req: WaitRequest, *, now: datetime | None = None
) -> tuple[WaitRecord, str, str]:
    """Record the wait and post its question; raises ``_Reject`` for a destination Slack refuses.

    ``now`` (default: the current time) is when the question arrived; its expiry counts from it.
    """
    async with _one_post_at_a_time(f"{req.workflow_uuid}/{req.execution_uuid}".lower()):
        return await _post_wait(bot, req, now or datetime.now(UTC))


async def _post_wait(bot: Bot, req: WaitRequest, now: datetime) -> tuple[WaitRecord, str, str]:
    mention = None
    channel = req.channel
    if req.user:
        user_id = await _slack_user_for_upn(bot, req.user)
        if channel is None:
            if user_id is None:
                raise _Reject(400, f"user: no Slack user has the email {req.user}")
            channel = user_id  # chat.postMessage to a user id opens the DM with the bot
        mention = f"<@{user_id}>" if user_id else req.user
    assert channel is not None
    wait, created = await bot.store.create_wait(
        workflow_uuid=req.workflow_uuid,
        execution_uuid=req.execution_uuid,
        text=req.text,
        options=[
            WaitOption(label=o.label, style=o.style, parameters=dict(o.parameters))
            for o in req.options
        ],
        expires_at=now + timedelta(minutes=req.expires_in_minutes),
        channel_id=req.channel,
        dm_user_upn=req.user,
        approvers=list(req.approvers),
        approver_parameter=req.approver_parameter,
        requester_upn=req.requester,
        now=now,
    )
    if not created and wait.message_channel and wait.message_ts:
        log.info("wait_repeated", wait=wait.id)
        return wait, wait.message_channel, wait.message_ts
    from handlers.wait_views import wait_message

    try:
        posted = await bot.slack.chat_postMessage(
            channel=channel, **wait_message(wait, mention=mention)
        )
    except SlackApiError as exc:
        error = exc.response.get("error")
        # the wait stays pending without a message: a repeated webhook posts it again
        hint = (
            " (invite the bot to the channel)"
            if error in {"not_in_channel", "channel_not_found"}
            else ""
        )
        raise _Reject(
            400 if error in {"channel_not_found", "not_in_channel", "is_archived"} else 502,
            f"Slack refused the message: {error}{hint}",
        ) from None
    message_channel = str(posted.get("channel") or channel)
    ts = str(posted.get("ts"))
    placed = await bot.store.set_wait_message(wait.id, message_channel, ts)
    if placed.message_ts != ts and placed.message_channel and placed.message_ts:
        # another replica posted the same question first: keep one message in Slack
        with contextlib.suppress(SlackApiError):
            await bot.slack.chat_delete(channel=message_channel, ts=ts)
        log.info("wait_posted_twice", wait=wait.id, kept=placed.message_ts)
        return placed, placed.message_channel, placed.message_ts
    log.info("wait_posted", wait=wait.id, execution=wait.execution_uuid, channel=message_channel)
    return placed, message_channel, ts


async def _slack_user_for_upn(bot: Bot, upn: str) -> str | None:
    user_id = await bot.identity.user_for_email(upn)
    if user_id is None:  # the UPN may be the rewritten form of the Slack email
        for email in bot.policy.emails_for_upn(upn):
            user_id = await bot.identity.user_for_email(email)
            if user_id:
                break
    return user_id


# -- a click ------------------------------------------------------------------------------

_REFUSALS = {
    "not_found": "This question is no longer known to the bot.",
    "expired": "This question has expired; nothing was sent to Nexthink.",
    "in_progress": "{who} is deciding this right now.",
    "decided": "This was already decided by {who} {when}.",
    "failed": "This was already answered by {who} {when}, and Nexthink refused it.",
    "own_request": "You asked for this, so someone else has to decide it.",
}


async def decide(
    bot: Bot,
    *,
    wait_id: str,
    option_index: int,
    user_id: str,
    channel_id: str | None,
    message_ts: str | None,
) -> str | None:
    """Handle one click. Returns an ephemeral text for the clicker, or None when the message
    itself shows the result."""
    from handlers.views import _when
    from handlers.wait_views import decided_line, wait_message, wait_settled_message

    wait = await bot.store.get_wait(wait_id)
    if wait is None or (wait.message_ts and message_ts and (wait.message_ts != message_ts)):
        CLICKS.labels("wait", "unknown").inc()
        return "This button does not belong to a question the bot knows."
    if not 0 <= option_index < len(wait.options):
        CLICKS.labels("wait", "unknown").inc()
        return "This button does not belong to a question the bot knows."
    try:
        upn: str | None = await bot.identity.upn(user_id)
    except Exception:
        upn = None
    groups = (
        await bot.identity.groups_of(user_id) if _needs_groups(bot, wait.approvers) else frozenset()
    )
    principal = Principal(user_id=user_id, upn=upn, groups=groups)
    decision = bot.policy.may_decide(
        principal,
        approvers=list(wait.approvers) or None,
        requester_upn=wait.requester_upn,
        requester_id=None,
    )
    if not decision.allowed:
        CLICKS.labels("wait", "refused").inc()
        return decision.reason
    claim = await bot.store.claim_wait(wait.id, user_id, upn, option_index)
    if isinstance(claim, ClaimRefusal):
        CLICKS.labels("wait", claim.reason).inc()
        other = claim.wait
        who = f"<@{other.decided_by}>" if other and other.decided_by else "someone"
        moment = (other.decided_at or other.claimed_at) if other else None
        when = _when(moment) if moment else ""
        if claim.reason == "expired" and other is not None:
            await _update(
                bot,
                other,
                wait_settled_message(
                    other,
                    headline=":hourglass: This question expired; nothing was sent to Nexthink.",
                ),
            )
        return _REFUSALS[claim.reason].format(who=who, when=when)
    wait = claim
    option = wait.options[option_index]
    params = dict(option.parameters)
    if wait.approver_parameter and upn:
        params[wait.approver_parameter] = upn
    await _update(
        bot,
        wait,
        wait_settled_message(
            wait,
            headline=f":hourglass_flowing_sand: <@{user_id}> chose *{option.label}*; sending it to Nexthink…",
        ),
    )
    record = await bot.store.create_request(
        kind="decision",
        user_id=user_id,
        user_upn=upn,
        channel_id=channel_id,
        workflow_id=wait.workflow_uuid,
        targets=[{"kind": "execution", "label": wait.execution_uuid, "wait": wait.id}],
        params=params,
        state="pending",
    )
    now = datetime.now(UTC)
    assert wait.claim_token is not None
    try:
        answers = await bot.nexthink.trigger(wait.workflow_uuid, wait.execution_uuid, params)
    except BadRequest as exc:  # Nexthink refused this trigger: the question is closed
        # (a 403 is the bot's credential lacking a permission, fixable: like the other errors
        # below, it leaves the question open for another try)
        detail = " ".join(p for p in (exc.code or "", exc.details or exc.message) if p)
        done = await _recorded(
            bot.store.finish_wait(wait.id, wait.claim_token, "failed", f"refused: {detail}")
        )
        await _recorded(bot.store.update_request(record.id, state="failed", error=detail))
        CLICKS.labels("wait", "nexthink_refused").inc()
        await _update(
            bot,
            done or wait,
            wait_settled_message(
                done or wait,
                headline=f":x: <@{user_id}> chose *{option.label}* {_when(now)}, but Nexthink refused it: {detail}",
                detail="The question is closed; nothing was resumed.",
            ),
        )
        return None
    except NexthinkError as exc:
        retry_note = f"{type(exc).__name__} at {now.isoformat(timespec='seconds')}: {exc.message}"
        released = await _recorded(bot.store.release_wait(wait.id, wait.claim_token, retry_note))
        state = "unknown" if may_have_run(exc) else "failed"
        await _recorded(bot.store.update_request(record.id, state=state, error=retry_note))
        CLICKS.labels("wait", "nexthink_error").inc()
        note = (
            f":warning: <@{user_id}>'s *{option.label}* did not get a clear answer from Nexthink ({exc.summary}). "
            "An approver may try again; if the execution was already resumed, Nexthink will refuse the second try."
        )
        current = released or wait
        mention = await _mention(bot, current)
        await _update(bot, current, wait_message(current, mention=mention, note=note))
        return None
    except asyncio.CancelledError:
        # The bot is stopping and gave up on this trigger: whether it reached Nexthink is
        # unknown. Give the question back (else it stays claimed for good, "being decided" by
        # nobody) so that an approver can try again once a bot is running.
        retry_note = f"interrupted at {now.isoformat(timespec='seconds')}: the bot stopped"
        released = await bot.store.release_wait(wait.id, wait.claim_token, retry_note)
        await bot.store.update_request(record.id, state="unknown", error=retry_note)
        note = (
            f":warning: The bot restarted while sending <@{user_id}>'s *{option.label}* to "
            "Nexthink. An approver may try again; if the execution was already resumed, "
            "Nexthink will refuse the second try."
        )
        current = released or wait
        await _update(
            bot, current, wait_message(current, mention=await _mention(bot, current), note=note)
        )
        raise
    uuids = ", ".join(f"`{a.request_uuid}`" for a in answers) or "no request id"
    done = await _recorded(
        bot.store.finish_wait(wait.id, wait.claim_token, "decided", f"resumed: {uuids}")
    )
    await _recorded(
        bot.store.update_request(
            record.id, state="sent", nexthink_request_uuids=[a.request_uuid for a in answers]
        )
    )
    CLICKS.labels("wait", "ok").inc()
    emoji = ":white_check_mark:" if option.style != "danger" else ":no_entry_sign:"
    await _update(
        bot,
        done or wait,
        wait_settled_message(
            done or wait,
            headline=decided_line(emoji, user_id, option.label, now),
            detail=f"Nexthink resumed the execution: request {uuids}",
        ),
    )
    return None


async def _recorded(step: Awaitable[T]) -> T | None:
    """A store write once Nexthink was called: if the database went away meanwhile, the
    outcome is still shown in Slack and logged, rather than lost with a failed task (a claim left
    behind is released by the stale-claim sweep)."""
    try:
        return await step
    except StoreError as exc:
        log.error("decision_not_recorded", error=str(exc))
        return None


async def _mention(bot: Bot, wait: WaitRecord) -> str | None:
    """The mention of the question's ``user``, as ``post_wait`` showed it."""
    if not wait.dm_user_upn:
        return None
    try:
        user_id = await _slack_user_for_upn(bot, wait.dm_user_upn)
    except SlackApiError:
        user_id = None
    return f"<@{user_id}>" if user_id else wait.dm_user_upn


def _needs_groups(bot: Bot, approvers: Any) -> bool:
    return bot.policy.uses_groups or any(str(a).startswith("@") for a in approvers or ())


async def _update(bot: Bot, wait: WaitRecord, message: dict[str, Any]) -> None:
    if not (wait.message_channel and wait.message_ts):
        return
    try:
        await bot.slack.chat_update(channel=wait.message_channel, ts=wait.message_ts, **message)
    except SlackApiError as exc:
        log.warning("wait_message_update_failed", wait=wait.id, error=exc.response.get("error"))


async def sweep_expired(bot: Bot, *, now: datetime | None = None) -> int:
    """Close the messages of waits that expired by ``now`` (default: the current time); returns
    how many."""
    from handlers.wait_views import wait_settled_message

    expired = await bot.store.expire_waits(now)
    for wait in expired:
        await _update(
            bot,
            wait,
            wait_settled_message(
                wait,
                headline=":hourglass: This question expired without a decision; nothing was sent to Nexthink.",
            ),
        )
    return len(expired)


async def sweep_stale(
    bot: Bot, *, now: datetime | None = None, older_than: timedelta = STALE_AFTER
) -> int:
    """Give back to their deciders the waits whose decision a crashed process left half done
    (claimed for too long): their buttons come back with a note. Returns how many."""
    from handlers.wait_views import wait_message

    released = await bot.store.release_stale_claims(older_than, now)
    note = (
        ":warning: A decision was started but the bot stopped before Nexthink answered, so the "
        "execution may or may not have been resumed. Try again: if it was, Nexthink refuses "
        "the second answer."
    )
    for wait in released:
        await _update(bot, wait, wait_message(wait, mention=await _mention(bot, wait), note=note))
    return len(released)
