"""Every name Slack and the bot share: the command, callback ids, action ids, block ids.

``manifest.yaml``, the handlers and the tests all name things through this module.
"""

from __future__ import annotations

from typing import Final

COMMAND: Final = "/nexthink"

# modals (callback_id)
RUN_MODAL: Final = "nexthink_run_modal"
DENY_REASON_MODAL: Final = "nexthink_deny_reason"
APPROVE_COMMENT_MODAL: Final = "nexthink_approve_comment"

# shortcuts (callback_id)
GLOBAL_SHORTCUT: Final = "nexthink_run_workflow"
MESSAGE_SHORTCUT: Final = "nexthink_run_for_author"

# buttons (action_id)
WAIT_DECISION: Final = "nexthink_wait_decision"
APPROVAL_APPROVE: Final = "nexthink_approval_approve"
APPROVAL_DENY: Final = "nexthink_approval_deny"
CONSENT_ALLOW: Final = "nexthink_consent_allow"
CONSENT_NOT_NOW: Final = "nexthink_consent_not_now"
HOME_RUN: Final = "nexthink_home_run"
HOME_OPEN_MODAL: Final = "nexthink_home_open_modal"
FLEET_RUN: Final = "nexthink_fleet_run"
FLEET_CANCEL: Final = "nexthink_fleet_cancel"
SCHEDULE_CANCEL: Final = "nexthink_schedule_cancel"

# run modal: block ids and action ids
MODAL_WORKFLOW_BLOCK: Final = "workflow"
MODAL_WORKFLOW: Final = "nexthink_modal_workflow"
MODAL_USERS_BLOCK: Final = "target_users"
MODAL_USERS: Final = "nexthink_modal_users"
MODAL_DEVICES_BLOCK: Final = "target_devices"
MODAL_DEVICES: Final = "nexthink_modal_devices"
MODAL_MY_DEVICE_BLOCK: Final = "my_device"
MODAL_MY_DEVICE: Final = "nexthink_modal_my_device"
MODAL_PARAMS_BLOCK: Final = "params"
MODAL_PARAMS: Final = "nexthink_modal_params"
MODAL_PARAM_PREFIX: Final = "param:"
MODAL_WHEN_DATE_BLOCK: Final = "when_date"
MODAL_WHEN_DATE: Final = "nexthink_modal_when_date"
MODAL_WHEN_TIME_BLOCK: Final = "when_time"
MODAL_WHEN_TIME: Final = "nexthink_modal_when_time"
DENY_REASON_BLOCK: Final = "reason"
DENY_REASON: Final = "nexthink_deny_reason_text"
APPROVE_COMMENT_BLOCK: Final = "comment"
APPROVE_COMMENT: Final = "nexthink_approve_comment_text"

# the bot scopes manifest.yaml asks for, which an OAuth install requests (tests/test_e2e_grid.py)
BOT_SCOPES: Final = (
    "commands",
    "chat:write",
    "chat:write.public",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "im:write",
)
