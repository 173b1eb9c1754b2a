"""What a person does in a modal: submit it, close it, type in an external select."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.console.driver.elements import copy_json, find_element, missing_required, view_state
from bot.console.driver.fields import PayloadFields
from bot.console.driver.sending import DriverResponse, with_problems
from bot.console.localslack import JSONDict, SlackError

__all__ = ["ModalActions"]

_REQUIRED = "Please complete this required field."


class ModalActions(PayloadFields):
    """Submitting, closing and querying modals, and doing what the bot's ack says to them."""

    def view_submission_payload(
        self, user_id: str, view_id: str, values: Mapping[str, Mapping[str, Any]] | None = None
    ) -> JSONDict:
        """The ``view_submission`` payload, ``state.values`` shaped per element type.

        ``values`` maps block ID -> action ID -> a value: a string (text inputs, the option value of
        selects and radio buttons, a user/conversation/channel ID, a date), a list of those for
        multi-selects and checkboxes, or a dict used as the element's state as is. Elements left out
        keep what the person chose before, else their initial value.
        """
        view = self._view(view_id)
        state = view_state(view, values or {})
        view.state.clear()
        view.state.update(state)
        return {
            "type": "view_submission",
            **self._team_fields(in_view=True),
            "user": self._user(user_id),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "trigger_id": self._trigger(user_id, view_id),
            "view": copy_json(view.view),
            "response_urls": [],
        }

    async def submit_view(
        self, user_id: str, view_id: str, values: Mapping[str, Mapping[str, Any]] | None = None
    ) -> DriverResponse:
        """Submit a modal, then close, update, push or annotate it as the ack's ``response_action`` says.

        Required inputs left empty are refused before sending, as Slack's client does (status 0).
        """
        payload = self.view_submission_payload(user_id, view_id, values)
        missing = missing_required(payload["view"])
        if missing:
            errors = dict.fromkeys(missing, _REQUIRED)
            self.slack.show_view_errors(view_id, errors)
            body = {"response_action": "errors", "errors": errors}
            return DriverResponse(0, body, 0.0, tuple(f"{b}: {_REQUIRED}" for b in missing))
        response = await self.post_interactive(payload)
        return with_problems(response, self._apply_view_answer(view_id, response))

    def _apply_view_answer(self, view_id: str, response: DriverResponse) -> list[str]:
        if response.status != 200:
            return [f"We had some trouble connecting (http {response.status})"]
        body = response.body if isinstance(response.body, dict) else {}
        action = body.get("response_action")
        try:
            if action == "errors":
                self.slack.show_view_errors(view_id, dict(body.get("errors") or {}))
            elif action == "update":
                self.slack.replace_view(view_id, body.get("view") or {})
            elif action == "push":
                self.slack.push_view(view_id, body.get("view") or {})
            elif action == "clear":
                self.slack.close_view(view_id, clear=True)
            else:
                self.slack.close_view(view_id)
        except SlackError as exc:
            return [
                f"response_action {action} refused: {exc.error} {' '.join(exc.messages)}".strip()
            ]
        return []

    async def close_view(self, user_id: str, view_id: str) -> DriverResponse | None:
        """Close a modal with its close button; Slack tells the bot only if ``notify_on_close``."""
        view = self._view(view_id)
        response = None
        if view.view.get("notify_on_close"):
            payload = {
                "type": "view_closed",
                **self._team_fields(in_view=True),
                "user": self._user(user_id),
                "api_app_id": self.api_app_id,
                "token": self.verification_token,
                "view": copy_json(view.view),
                "is_cleared": bool(view.view.get("clear_on_close")),
            }
            response = await self.post_interactive(payload)
        self.slack.close_view(view_id, clear=bool(view.view.get("clear_on_close")))
        return response

    def suggestion_payload(
        self, user_id: str, view_id: str, action_id: str, value: str
    ) -> JSONDict:
        """The ``block_suggestion`` payload for typing ``value`` in an external select."""
        view = self._view(view_id)
        block_id, _ = find_element(view.view.get("blocks") or [], action_id, None, None)
        return {
            "type": "block_suggestion",
            "user": self._user(user_id),
            "container": {"type": "view", "view_id": view_id},
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "action_id": action_id,
            "block_id": block_id,
            "value": value,
            **self._team_fields(in_view=True),
            "view": copy_json(view.view),
        }

    async def suggest(
        self, user_id: str, view_id: str, action_id: str, value: str
    ) -> DriverResponse:
        """Type in an external select; the answer's body holds the options Slack would list."""
        response = await self.post_interactive(
            self.suggestion_payload(user_id, view_id, action_id, value)
        )
        body = response.body if isinstance(response.body, dict) else {}
        options = body.get("options") or [
            o for g in body.get("option_groups") or [] for o in g.get("options", [])
        ]
        problems = []
        if response.status != 200:
            problems.append(f"options request failed: http {response.status}")
        elif len(options) > 100:
            problems.append(f"{len(options)} options: Slack shows at most 100")
        return with_problems(response, problems)
