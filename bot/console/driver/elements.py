"""What a person's screen holds, as payloads carry it: finding an element in blocks, and the
``state.values`` entry Slack builds for each element type."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from bot.console.localslack import JSONDict, View

__all__ = ["copy_json", "element_state", "find_element", "missing_required", "view_state"]


def copy_json(value: JSONDict) -> JSONDict:
    copied: JSONDict = json.loads(json.dumps(value))
    return copied


def _elements(blocks: list[JSONDict]) -> Iterator[tuple[JSONDict, JSONDict]]:
    for block in blocks:
        if isinstance(block.get("accessory"), dict):
            yield block, block["accessory"]
        if isinstance(block.get("element"), dict):
            yield block, block["element"]
        if block.get("type") == "actions":
            for element in block.get("elements") or []:
                yield block, element


def find_element(
    blocks: list[JSONDict], action_id: str, block_id: str | None, value: Any
) -> tuple[str, JSONDict]:
    found = [
        (str(block.get("block_id", "")), element)
        for block, element in _elements(blocks)
        if element.get("action_id") == action_id and block_id in (None, block.get("block_id"))
    ]
    buttons = [(b, e) for b, e in found if e.get("type") == "button"]
    if value is not None and buttons:
        found = [(b, e) for b, e in buttons if e.get("value") == value]
    if not found:
        present = sorted({str(e.get("action_id")) for _, e in _elements(blocks)})
        raise LookupError(
            f"no element {action_id!r} (block {block_id!r}, value {value!r}); present: {present}"
        )
    return found[0]


def _options(element: JSONDict) -> Iterator[JSONDict]:
    yield from element.get("options") or []
    for group in element.get("option_groups") or []:
        yield from group.get("options") or []


def _option(element: JSONDict, value: Any) -> JSONDict:
    if isinstance(value, dict):
        return value
    for option in _options(element):
        if option.get("value") == value:
            return option
    if element["type"].endswith("external_select"):
        return {
            "text": {"type": "plain_text", "text": str(value), "emoji": True},
            "value": str(value),
        }
    raise LookupError(f"{element.get('action_id')!r} has no option {value!r}")


# element type -> (state key, initial key, multiple)
_STATE_KEYS: dict[str, tuple[str, str, bool]] = {
    "plain_text_input": ("value", "initial_value", False),
    "email_text_input": ("value", "initial_value", False),
    "url_text_input": ("value", "initial_value", False),
    "number_input": ("value", "initial_value", False),
    "rich_text_input": ("rich_text_value", "initial_value", False),
    "static_select": ("selected_option", "initial_option", False),
    "external_select": ("selected_option", "initial_option", False),
    "radio_buttons": ("selected_option", "initial_option", False),
    "overflow": ("selected_option", "initial_option", False),
    "multi_static_select": ("selected_options", "initial_options", True),
    "multi_external_select": ("selected_options", "initial_options", True),
    "checkboxes": ("selected_options", "initial_options", True),
    "users_select": ("selected_user", "initial_user", False),
    "multi_users_select": ("selected_users", "initial_users", True),
    "conversations_select": ("selected_conversation", "initial_conversation", False),
    "multi_conversations_select": ("selected_conversations", "initial_conversations", True),
    "channels_select": ("selected_channel", "initial_channel", False),
    "multi_channels_select": ("selected_channels", "initial_channels", True),
    "datepicker": ("selected_date", "initial_date", False),
    "timepicker": ("selected_time", "initial_time", False),
    "datetimepicker": ("selected_date_time", "initial_date_time", False),
}
_MISSING = object()


def element_state(element: JSONDict, value: Any = _MISSING) -> JSONDict:
    """One entry of ``state.values``, as Slack builds it for this element type."""
    kind = element["type"]
    state: JSONDict = {"type": kind}
    if isinstance(value, dict) and kind not in (
        "static_select",
        "external_select",
        "radio_buttons",
        "overflow",
    ):
        return {**state, **value}
    key, initial, multiple = _STATE_KEYS.get(kind, ("value", "initial_value", False))
    if value is _MISSING or value is None:
        state[key] = element.get(initial, [] if multiple else None)
        return state
    with_options = "option" in key
    if multiple:
        items = list(value) if isinstance(value, list | tuple) else [value]
        state[key] = [_option(element, v) for v in items] if with_options else items
    else:
        state[key] = _option(element, value) if with_options else value
    return state


def view_state(
    view: View, values: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, JSONDict]]:
    blocks = view.view.get("blocks") or []
    by_key = {
        (str(b.get("block_id")), str(e.get("action_id"))): (b, e) for b, e in _elements(blocks)
    }
    for block_id, actions in values.items():
        for action_id in actions:
            if (block_id, action_id) not in by_key:
                raise LookupError(
                    f"view {view.id} has no element {block_id}/{action_id}; present: {sorted(by_key)}"
                )
    state: dict[str, dict[str, JSONDict]] = {}
    for (block_id, action_id), (block, element) in by_key.items():
        if element.get("type") == "button":
            continue
        chosen = values.get(block_id, {})
        if action_id in chosen:
            entry = element_state(element, chosen[action_id])
        elif action_id in view.state.get(block_id, {}):
            entry = view.state[block_id][action_id]
        elif block.get("type") == "input":
            entry = element_state(element)
        else:
            continue
        state.setdefault(block_id, {})[action_id] = entry
    return state


def missing_required(view: JSONDict) -> list[str]:
    values = view.get("state", {}).get("values", {})
    missing = []
    for block in view.get("blocks") or []:
        if block.get("type") != "input" or block.get("optional"):
            continue
        entry = values.get(block.get("block_id"), {}).get(
            block.get("element", {}).get("action_id"), {}
        )
        filled = [v for k, v in entry.items() if k != "type" and v not in (None, "", [])]
        if not filled:
            missing.append(str(block.get("block_id")))
    return missing
