"""Block Kit checks: the limits Slack enforces most often, with Slack's own error wording.

``LocalSlack`` refuses what Slack would refuse (``invalid_blocks``, ``invalid_arguments``), so a
test catches a message or a view that real Slack would not show.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NO_ACTION_ID", "json_pointer", "validate_blocks", "validate_view"]

JSONDict = dict[str, Any]

_BLOCK_TYPES = frozenset(
    {"actions", "context", "divider", "file", "header", "image", "input", "markdown"}
    | {"rich_text", "section", "table", "video", "context_actions"}
)
_ELEMENT_TYPES = frozenset(
    {"button", "checkboxes", "datepicker", "datetimepicker", "email_text_input", "image"}
    | {"multi_static_select", "multi_external_select", "multi_users_select", "overflow"}
    | {"multi_conversations_select", "multi_channels_select", "number_input", "file_input"}
    | {"plain_text_input", "radio_buttons", "rich_text_input", "static_select", "timepicker"}
    | {"external_select", "users_select", "conversations_select", "channels_select"}
    | {"url_text_input", "workflow_button"}
)
NO_ACTION_ID = frozenset({"image", "plain_text", "mrkdwn"})


def json_pointer(pointer: str) -> str:
    return f"[json-pointer:{pointer}]"


def _check_text(obj: Any, pointer: str, limit: int, *, plain: bool = False) -> list[str]:
    kinds = ("plain_text",) if plain else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        return [f"must be a {' or '.join(kinds)} text object {json_pointer(pointer)}"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"must be more than 0 characters {json_pointer(pointer + '/text')}"]
    if len(text) > limit:
        return [f"must be less than {limit + 1} characters {json_pointer(pointer + '/text')}"]
    return []


def _check_options(options: Any, pointer: str, limit: int) -> list[str]:
    if not isinstance(options, list) or len(options) > limit:
        return [f"must be an array of no more than {limit} items {json_pointer(pointer)}"]
    errors: list[str] = []
    for i, option in enumerate(options):
        errors += _check_text(
            option.get("text") if isinstance(option, dict) else None, f"{pointer}/{i}/text", 75
        )
        value = option.get("value") if isinstance(option, dict) else None
        if isinstance(value, str) and len(value) > 150:
            errors.append(
                f"must be less than 151 characters {json_pointer(f'{pointer}/{i}/value')}"
            )
    return errors


def _check_element(element: Any, pointer: str) -> list[str]:
    if not isinstance(element, dict) or element.get("type") not in _ELEMENT_TYPES:
        return [f"must be a supported element type {json_pointer(pointer + '/type')}"]
    errors: list[str] = []
    action_id = element.get("action_id")
    if action_id is not None and (not isinstance(action_id, str) or not 0 < len(action_id) <= 255):
        errors.append(f"must be 1 to 255 characters {json_pointer(pointer + '/action_id')}")
    if element["type"] == "button":
        errors += _check_text(element.get("text"), pointer + "/text", 75, plain=True)
        if len(str(element.get("value", ""))) > 2000:
            errors.append(f"must be less than 2001 characters {json_pointer(pointer + '/value')}")
        if element.get("style") not in (None, "primary", "danger"):
            errors.append(f"must be primary or danger {json_pointer(pointer + '/style')}")
    if "options" in element:
        limit = 5 if element["type"] == "overflow" else 100
        errors += _check_options(element["options"], pointer + "/options", limit)
    if "placeholder" in element:
        errors += _check_text(element["placeholder"], pointer + "/placeholder", 150, plain=True)
    return errors


def _check_block(block: JSONDict, pointer: str) -> list[str]:
    kind = block["type"]
    errors: list[str] = []
    if kind == "section":
        if "text" not in block and "fields" not in block:
            errors.append(f"must provide text or fields {json_pointer(pointer)}")
        if "text" in block:
            errors += _check_text(block["text"], pointer + "/text", 3000)
        fields = block.get("fields")
        if fields is not None:
            if not isinstance(fields, list) or len(fields) > 10:
                errors.append(
                    f"must be an array of no more than 10 items {json_pointer(pointer + '/fields')}"
                )
            else:
                for i, item in enumerate(fields):
                    errors += _check_text(item, f"{pointer}/fields/{i}", 2000)
        if "accessory" in block:
            errors += _check_element(block["accessory"], pointer + "/accessory")
    elif kind == "header":
        errors += _check_text(block.get("text"), pointer + "/text", 150, plain=True)
    elif kind == "markdown":
        text = block.get("text")
        if not isinstance(text, str) or not 0 < len(text) <= 12000:
            errors.append(f"must be 1 to 12000 characters {json_pointer(pointer + '/text')}")
    elif kind in ("actions", "context"):
        limit = 25 if kind == "actions" else 10
        elements = block.get("elements")
        if not isinstance(elements, list) or not 0 < len(elements) <= limit:
            errors.append(
                f"must be an array of 1 to {limit} items {json_pointer(pointer + '/elements')}"
            )
        elif kind == "actions":
            seen: set[str] = set()
            for i, element in enumerate(elements):
                errors += _check_element(element, f"{pointer}/elements/{i}")
                action_id = element.get("action_id") if isinstance(element, dict) else None
                if isinstance(action_id, str) and action_id in seen:
                    errors.append(
                        f"duplicate action_id {action_id!r} {json_pointer(f'{pointer}/elements/{i}/action_id')}"
                    )
                if isinstance(action_id, str):
                    seen.add(action_id)
        else:
            for i, element in enumerate(elements):
                if isinstance(element, dict) and element.get("type") != "image":
                    errors += _check_text(element, f"{pointer}/elements/{i}", 3000)
    elif kind == "input":
        errors += _check_text(block.get("label"), pointer + "/label", 2000, plain=True)
        errors += _check_element(block.get("element"), pointer + "/element")
        if "hint" in block:
            errors += _check_text(block["hint"], pointer + "/hint", 2000, plain=True)
    return errors


def validate_blocks(blocks: Any, *, max_blocks: int = 50, pointer: str = "/blocks") -> list[str]:
    """Slack's objections to a list of blocks (empty when Slack would accept it)."""
    if not isinstance(blocks, list):
        return [f"must be an array {json_pointer(pointer)}"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed {json_pointer(pointer)}")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        here = f"{pointer}/{i}"
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            errors.append(f"unsupported type {json_pointer(here + '/type')}")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not 0 < len(block_id) <= 255:
                errors.append(f"must be 1 to 255 characters {json_pointer(here + '/block_id')}")
            elif block_id in block_ids:
                errors.append(f"duplicate block_id {block_id!r} {json_pointer(here + '/block_id')}")
            else:
                block_ids.add(block_id)
        errors += _check_block(block, here)
    return errors


def validate_view(view: Any, *, pointer: str = "/view") -> list[str]:
    """Slack's objections to a modal or Home tab view (empty when Slack would accept it)."""
    if not isinstance(view, dict):
        return [f"must be an object {json_pointer(pointer)}"]
    errors: list[str] = []
    kind = view.get("type")
    if kind not in ("modal", "home"):
        errors.append(f"must be modal or home {json_pointer(pointer + '/type')}")
    if kind == "modal":
        errors += _check_text(view.get("title"), pointer + "/title", 24, plain=True)
        for key in ("submit", "close"):
            if view.get(key) is not None:
                errors += _check_text(view[key], f"{pointer}/{key}", 24, plain=True)
        blocks = view.get("blocks")
        has_input = isinstance(blocks, list) and any(
            isinstance(b, dict) and b.get("type") == "input" for b in blocks
        )
        if has_input and view.get("submit") is None:
            errors.append(
                f"must provide submit when input blocks are present {json_pointer(pointer + '/submit')}"
            )
    for key, limit in (("callback_id", 255), ("private_metadata", 3000), ("external_id", 255)):
        if len(str(view.get(key, ""))) > limit:
            errors.append(
                f"must be less than {limit + 1} characters {json_pointer(f'{pointer}/{key}')}"
            )
    errors += validate_blocks(view.get("blocks"), max_blocks=100, pointer=pointer + "/blocks")
    return errors
