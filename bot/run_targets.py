"""Whom a run is for: the requester's targets resolved for Nexthink, within the policy.

``TargetResolver.resolve`` turns the ``UserTarget``/``DeviceTarget`` values a person named into
``Target``s: the requester by default, people (and, for a workflow that needs consent, the Slack
user to ask), and devices, of which a role with ``targets: self`` (or a workflow that needs
consent) may name only the requester's own, as the devices query (``bot.devices``) lists them.
Every path (command, form, Home, shortcut) prepares its run through ``bot.runs.Runner``, which
calls this.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.catalogue import Entry
from bot.devices import Device, DeviceList, Devices
from bot.identity import Identity, IdentityError
from bot.mrkdwn import code as code_span
from bot.mrkdwn import shown
from bot.nexthink.models import DeviceData, UserData, is_uuid
from bot.policy import Policy, Principal
from bot.targets import DeviceTarget, Target, UserTarget
from bot.text import outside

__all__ = ["Refusal", "Target", "TargetResolver", "code", "esc", "others", "stored_target"]


class Refusal(Exception):
    """The request is refused before anything is sent; ``str()`` tells the person why."""

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        #: what the refusal is about, for inline modal errors: workflow, targets, params, param:NAME
        self.field = field


class TargetResolver:
    def __init__(self, *, policy: Policy, identity: Identity, devices: Devices) -> None:
        self.policy = policy
        self.identity = identity
        self.devices = devices

    async def resolve(
        self,
        principal: Principal,
        channel_id: str | None,
        entry: Entry,
        users: Sequence[UserTarget],
        devices: Sequence[DeviceTarget],
    ) -> tuple[tuple[Target, ...], DeviceList | None]:
        """The run's targets, and the requester's devices when the run is on them by default."""
        own_upn = principal.upn or ""
        if not users and not devices:
            own = await self.devices.of(own_upn) if self.devices.enabled and own_upn else None
            return (Target(label=own_upn, user=UserData(upn=own_upn)),), own
        may_target_others = self.policy.may_target_others(principal, channel_id, entry.id)
        consent = self.policy.consent_for(entry.id)
        targets: list[Target] = []
        for user in users:
            if not may_target_others and user.kind == "mention" and user.value != principal.user_id:
                # someone else, and not allowed: refused without looking them up in Slack
                raise Refusal(
                    f"You may only run {code(entry.id)} on yourself, not on "
                    f"{_mention(user.value)}. Leave out `user:` and `device:`: Nexthink then "
                    "picks your most recent device.",
                    field="targets",
                )
            target = await self._user_target(user)
            is_self = (
                target.user is not None
                and target.user.upn is not None
                and target.user.upn.casefold() == own_upn.casefold()
            ) or (user.kind == "mention" and user.value == principal.user_id)
            if not is_self and not may_target_others:
                raise Refusal(
                    f"You may only run {code(entry.id)} on yourself, not on {esc(target.label)}. "
                    "Leave out `user:` and `device:`: Nexthink then picks your most recent device.",
                    field="targets",
                )
            if is_self:
                target = replace(target, person=principal.user_id)
            elif consent is not None:
                target = await self._asked_person(entry, user, target)
            targets.append(target)
        for device in devices:
            if not may_target_others or consent is not None:
                own_device = await self._own_device(principal, entry, device, consent is not None)
                targets.append(Target(label=f"device {own_device.label}", device=own_device.data()))
                continue
            if device.kind == "collector_uid" or is_uuid(device.value):
                targets.append(
                    Target(
                        label=f"device {device.value}",
                        device=DeviceData(collector_uid=device.value),
                    )
                )
            else:
                targets.append(
                    Target(label=f"device {device.value}", device=DeviceData(name=device.value))
                )
        return tuple(_dedupe(targets)), None

    async def _own_device(
        self, principal: Principal, entry: Entry, device: DeviceTarget, consent: bool
    ) -> Device:
        """``device`` when it is one of the requester's own (the devices query says so), else a
        ``Refusal``: a role with ``targets: self``, or a workflow that needs consent, may name
        only the requester's own devices."""
        named = code("device:" + device.value)
        if consent:
            why = (
                f"{code(entry.id)} needs the person's consent, so it cannot run on {named}: target "
                "them with `user:` and they are asked first."
            )
        else:
            why = f"You may only run {code(entry.id)} on yourself, so {named} is not allowed."
        if not self.devices.enabled or not principal.upn:
            raise Refusal(
                why + " Leave out `device:`: Nexthink picks your most recent device.",
                field="targets",
            )
        mine = await self.devices.of(principal.upn)
        if mine.problem is not None:
            raise Refusal(
                why + f" The bot could not check which devices are yours ({esc(mine.problem)}). "
                "Leave out `device:`: Nexthink picks your most recent device.",
                field="targets",
            )
        found = mine.find(device.value)
        if found is None:
            yours = ", ".join(code("device:" + d.label) for d in mine.devices[:10])
            raise Refusal(
                f"{named} is not one of your devices, and {why[0].lower() + why[1:]}"
                + (f" Yours: {yours}." if yours else " Nexthink knows no device of yours."),
                field="targets",
            )
        return found

    async def _asked_person(self, entry: Entry, user: UserTarget, target: Target) -> Target:
        """The Slack user to ask for consent to run ``entry`` on ``target``; a ``Refusal`` when
        there is nobody to ask."""
        if user.kind == "mention":
            return replace(target, person=user.value)
        upn = target.user.upn if target.user else None
        if upn is None:
            raise Refusal(
                f"{code(entry.id)} needs the person's consent, and a SID does not say whom to ask: "
                "target them with `user:@name` or their UPN.",
                field="targets",
            )
        person = None
        for email in dict.fromkeys([*self.policy.emails_for_upn(upn), upn]):
            try:
                person = await self.identity.user_for_email(email)
            except SlackApiError:
                raise Refusal(
                    f"Slack did not say who {esc(upn)} is, so they cannot be asked for their "
                    "consent. Try again, or target them with `user:@name`.",
                    field="targets",
                ) from None
            if person:
                break
        if person is None:
            raise Refusal(
                f"{code(entry.id)} needs the person's consent, and no Slack user has the email "
                f"{esc(upn)}: target them with `user:@name`.",
                field="targets",
            )
        return replace(target, person=person)

    async def _user_target(self, user: UserTarget) -> Target:
        if user.kind == "mention":
            try:
                upn = await self.identity.upn(user.value, own=False)
            except IdentityError as exc:
                raise Refusal(str(exc), field="targets") from None
            return Target(label=upn, user=UserData(upn=upn))
        if user.kind == "sid":
            return Target(label=f"SID {user.value}", user=UserData(sid=user.value))
        return Target(label=user.value, user=UserData(upn=user.value))


def _mention(user_id: str) -> str:
    """A mention of a Slack user id, or the text as typed if it is not one."""
    return f"<@{user_id}>" if re.fullmatch(r"[UW][A-Z0-9]{2,30}", user_id) else code(user_id)


def esc(text: str) -> str:
    """Text a person (or Nexthink) wrote, shown in mrkdwn exactly as typed."""
    return shown(outside(text))


def code(text: str) -> str:
    """Text a person wrote, in a code span it cannot leave."""
    return code_span(outside(text))


def others(principal: Principal, targets: Sequence[Target]) -> tuple[Target, ...]:
    """The user targets that are not ``principal`` (by Slack user id or UPN)."""
    own = (principal.upn or "").casefold()
    return tuple(
        t
        for t in targets
        if t.user is not None
        and t.person != principal.user_id
        and not (own and (t.user.upn or "").casefold() == own)
    )


def stored_target(data: dict[str, Any]) -> Target:
    """A target as ``PreparedRun.targets_json`` stored it."""
    fields = {k: v for k, v in data.items() if k not in {"kind", "label", "person"}}
    person = data.get("person")
    label = str(data.get("label"))
    if data.get("kind") == "device":
        return Target(label=label, device=DeviceData.model_validate(fields))
    return Target(
        label=label, user=UserData.model_validate(fields), person=str(person) if person else None
    )


def _dedupe(targets: list[Target]) -> list[Target]:
    seen: set[str] = set()
    out: list[Target] = []
    for t in targets:
        key = repr(t.user.to_json() if t.user else t.device.to_json() if t.device else t.label)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out
