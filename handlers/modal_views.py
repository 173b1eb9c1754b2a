"""The run modal as Block Kit: pure functions from what the person may do to a view dict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.catalogue import Entry
from bot.devices import Device
from bot.forms import FormSeal
from handlers import ids
from handlers.blocks import plain

__all__ = ["ModalState", "loading_view", "message_view", "run_view"]

_TITLE = {"type": "plain_text", "text": "Run a Nexthink workflow"}
_MAX_OPTIONS = 100


class ModalState:
    """What the modal carries between Slack round trips, sealed in ``private_metadata``
    (``bot.forms``): the channel it was opened in, the response URL, the chosen workflow and the
    people picked (a message shortcut), for the person who opened it."""

    def __init__(
        self,
        channel_id: str | None,
        response_url: str | None,
        workflow: str | None = None,
        users: Sequence[str] = (),
        *,
        seal: FormSeal,
        user_id: str,
    ) -> None:
        self.channel_id = channel_id
        self.response_url = response_url
        self.workflow = workflow
        self.users = tuple(users)
        self.seal = seal
        self.user_id = user_id

    def dump(self) -> str:
        data = {
            "c": self.channel_id,
            "r": self.response_url,
            "w": self.workflow,
            "u": list(self.users),
        }
        return self.seal.seal({k: v for k, v in data.items() if v}, user_id=self.user_id)

    @classmethod
    def load(cls, text: object, *, seal: FormSeal, user_id: str) -> ModalState:
        """The state the bot sealed for ``user_id``; raises ``TamperedForm`` otherwise."""
        data = seal.open(text, user_id=user_id)
        raw_users = data.get("u")
        users: list[Any] = raw_users if isinstance(raw_users, list) else []
        return cls(
            channel_id=data.get("c") if isinstance(data.get("c"), str) else None,
            response_url=data.get("r") if isinstance(data.get("r"), str) else None,
            workflow=data.get("w") if isinstance(data.get("w"), str) else None,
            users=[u for u in users if isinstance(u, str)],
            seal=seal,
            user_id=user_id,
        )


def loading_view(state: ModalState) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": ids.RUN_MODAL,
        "title": _TITLE,
        "close": plain("Cancel"),
        "private_metadata": state.dump(),
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": ":hourglass_flowing_sand: Loading the workflows you may run…",
                },
            }
        ],
    }


def message_view(text: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": ids.RUN_MODAL,
        "title": _TITLE,
        "close": plain("Close"),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}],
    }


def _option(entry: Entry) -> dict[str, Any]:
    label = entry.workflow.display_name + (f" ({entry.alias})" if entry.alias else "")
    return {"text": plain(label), "value": entry.id[:150]}


def run_view(
    state: ModalState,
    entries: Sequence[Entry],
    *,
    selected: Entry | None,
    may_target_others: bool,
    param_choices: Mapping[str, tuple[Sequence[str], str | None]],
    other_params: bool = True,
    my_devices: Sequence[Device] = (),
    schedulable: bool = False,
) -> dict[str, Any]:
    """The form. ``param_choices``: for the selected workflow, parameter → (allowed values, default);
    an empty tuple of values means free text. ``other_params``: whether the workflow takes
    parameters beyond those (False when the policy declares its complete list), so that the
    form offers no "Other parameters" field whose every line would be refused. ``schedulable``:
    the policy lets this run be scheduled, so the form offers an optional When (date, time)."""
    options = [_option(e) for e in entries[:_MAX_OPTIONS]]
    select: dict[str, Any] = {
        "type": "static_select",
        "action_id": ids.MODAL_WORKFLOW,
        "placeholder": plain("Choose a workflow"),
        "options": options,
    }
    if selected is not None:
        select["initial_option"] = _option(selected)
    blocks: list[dict[str, Any]] = [
        {
            "type": "input",
            "block_id": ids.MODAL_WORKFLOW_BLOCK,
            "dispatch_action": True,
            "label": plain("Workflow"),
            "element": select,
        }
    ]
    if selected is not None and selected.workflow.description:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "plain_text", "text": selected.workflow.description[:2000]}],
            }
        )
    if state.users and not may_target_others:  # a message shortcut on someone else's message
        people = ", ".join(f"<@{u}>" for u in state.users[:5])
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"You may only run workflows on yourself here, so this runs for you, not for {people}.",
                    }
                ],
            }
        )
    if may_target_others:
        users: dict[str, Any] = {
            "type": "multi_users_select",
            "action_id": ids.MODAL_USERS,
            "placeholder": plain("Yourself, unless you pick people"),
        }
        if state.users:
            users["initial_users"] = list(state.users)
        blocks.append(
            {
                "type": "input",
                "block_id": ids.MODAL_USERS_BLOCK,
                "optional": True,
                "label": plain("Run on these people"),
                "element": users,
            }
        )
        blocks.append(
            {
                "type": "input",
                "block_id": ids.MODAL_DEVICES_BLOCK,
                "optional": True,
                "label": plain("…or these devices"),
                "hint": plain("One device name or Collector UUID per line.", 150),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ids.MODAL_DEVICES,
                    "multiline": True,
                },
            }
        )
    if len(my_devices) > 1:
        blocks.append(_device_menu(my_devices))
    for name, (allowed, default) in param_choices.items():
        block_id = ids.MODAL_PARAM_PREFIX + name
        if allowed:
            choices = [{"text": plain(v), "value": v[:150]} for v in allowed[:_MAX_OPTIONS]]
            element: dict[str, Any] = {
                "type": "static_select",
                "action_id": ids.MODAL_PARAMS,
                "options": choices,
            }
            if default is not None and default in allowed:
                element["initial_option"] = {"text": plain(default), "value": default[:150]}
        else:
            element = {"type": "plain_text_input", "action_id": ids.MODAL_PARAMS}
            if default:
                element["initial_value"] = default
        blocks.append(
            {
                "type": "input",
                "block_id": block_id,
                "optional": default is not None or not allowed,
                "label": plain(name),
                "element": element,
            }
        )
    if selected is not None and other_params:
        blocks.append(
            {
                "type": "input",
                "block_id": ids.MODAL_PARAMS_BLOCK,
                "optional": True,
                "label": plain("Other parameters"),
                "hint": plain("One key=value per line.", 150),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ids.MODAL_PARAMS,
                    "multiline": True,
                },
            }
        )
    if schedulable:
        blocks += _when_blocks()
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": ids.RUN_MODAL,
        "title": _TITLE,
        "submit": plain("Run"),
        "close": plain("Cancel"),
        "private_metadata": state.dump(),
        "blocks": blocks,
    }
    if not options:
        return message_view("There are no workflows that you may run here.")
    return view


def _device_option(device: Device) -> dict[str, Any]:
    seen = device.last_seen.strftime(" · seen %d %b %H:%M UTC") if device.last_seen else ""
    return {
        "text": plain(device.label[:50] + seen),
        "value": (device.collector_uid or device.name or "")[:150],
    }


def _device_menu(devices: Sequence[Device]) -> dict[str, Any]:
    """Which of the person's computers, most recently seen first; empty: Nexthink's choice."""
    latest = devices[0].label
    return {
        "type": "input",
        "block_id": ids.MODAL_MY_DEVICE_BLOCK,
        "optional": True,
        "label": plain("Which of your computers"),
        "hint": plain(f"Leave empty for the one you used last ({latest[:60]}).", 150),
        "element": {
            "type": "static_select",
            "action_id": ids.MODAL_MY_DEVICE,
            "placeholder": plain("Your most recently used one"),
            "options": [_device_option(d) for d in devices[:_MAX_OPTIONS]],
        },
    }


def _when_blocks() -> list[dict[str, Any]]:
    """The optional When: a date and a time, read in the person's Slack time zone."""
    return [
        {
            "type": "input",
            "block_id": ids.MODAL_WHEN_DATE_BLOCK,
            "optional": True,
            "label": plain("When: date (optional)"),
            "hint": plain("Leave date and time empty to run it now.", 150),
            "element": {"type": "datepicker", "action_id": ids.MODAL_WHEN_DATE},
        },
        {
            "type": "input",
            "block_id": ids.MODAL_WHEN_TIME_BLOCK,
            "optional": True,
            "label": plain("…and time, in your time zone"),
            "hint": plain("A time alone means today, or tomorrow once it has passed.", 150),
            "element": {"type": "timepicker", "action_id": ids.MODAL_WHEN_TIME},
        },
    ]
