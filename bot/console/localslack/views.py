"""LocalSlack's views: ``views.open|push|update|publish``, the triggers that open them, and
what the driver does to a modal on the bot's ``response_action`` (close, replace, push, errors)."""

from __future__ import annotations

import secrets
from typing import Any

from bot.console.blockkit import json_pointer, validate_view
from bot.console.localslack.records import JSONDict, SlackError, Trigger, View
from bot.console.localslack.workspace import Workspace, element_keys

__all__ = ["ViewMethods"]


class ViewMethods(Workspace):
    """Modals (a stack of up to three per trigger) and Home tabs."""

    def new_trigger_id(
        self,
        user_id: str | None = None,
        *,
        view_id: str | None = None,
        team_id: str | None = None,
    ) -> str:
        """A trigger valid ``trigger_ttl`` seconds, once; ``view_id`` is the modal it came from,
        ``team_id`` the workspace the person acted in (default the first)."""
        team = team_id or self.team_id
        trigger_id = f"{next(self._ids)}{int(self.clock())}.{team[1:]}.{secrets.token_hex(8)}"
        self._triggers[trigger_id] = Trigger(
            user_id, view_id, self.clock() + self.trigger_ttl, team_id=team
        )
        return trigger_id

    def close_view(self, view_id: str, *, clear: bool = False) -> None:
        """Close a modal (and the views pushed on it); ``clear`` closes its whole stack."""
        view = self.views.get(view_id)
        if view is None:
            return
        first = view.stack[0] if clear else view_id
        closing = [v for v in self.views.values() if first in v.stack and v.type == "modal"]
        for closed in closing:
            del self.views[closed.id]
            self._publish("view_closed", view=closed)

    def replace_view(self, view_id: str, spec: JSONDict) -> View:
        """Replace a view's content (``views.update`` and ``response_action: update``)."""
        view = self.views.get(view_id)
        if view is None:
            raise SlackError("not_found")
        if problems := validate_view(spec):
            raise SlackError("invalid_arguments", messages=problems)
        new = self._make_view(
            spec,
            view_id=view.id,
            user_id=view.user_id,
            trigger_id=view.trigger_id,
            stack=view.stack,
            like=view.view,
        )
        kept = {(b, a) for b, a in element_keys(new.view["blocks"])}
        for block_id, actions in view.state.items():  # Slack keeps what was typed where IDs persist
            for action_id, entry in actions.items():
                if (block_id, action_id) in kept:
                    new.state.setdefault(block_id, {})[action_id] = entry
        self.views[view.id] = new
        self._publish("view_updated", view=new)
        return new

    def push_view(self, parent_id: str, spec: JSONDict, *, trigger_id: str | None = None) -> View:
        """Push a modal on top of ``parent_id`` (``views.push`` and ``response_action: push``)."""
        parent = self.views.get(parent_id)
        if parent is None:
            raise SlackError("not_found")
        if len(parent.stack) >= 3:
            raise SlackError("push_limit_reached")
        view = self._open(spec, parent.user_id, trigger_id, stack=parent.stack, like=parent.view)
        self._publish("view_pushed", view=view)
        return view

    def show_view_errors(self, view_id: str, errors: dict[str, str]) -> None:
        view = self.views.get(view_id)
        if view is not None:
            self._publish("view_errors", view=view, errors=dict(errors))

    def _views_open(self, params: JSONDict) -> JSONDict:
        trigger = self._take_trigger(params.get("trigger_id"))
        spec = self._view_spec(params, "modal")
        trigger_id = str(params["trigger_id"])
        view = self._open(
            spec, trigger.user_id or "", trigger_id, stack=[], team_id=trigger.team_id
        )
        self._publish("view_opened", view=view)
        return {"ok": True, "view": view.view}

    def _views_push(self, params: JSONDict) -> JSONDict:
        trigger = self._take_trigger(params.get("trigger_id"))
        spec = self._view_spec(params, "modal")
        parent_id = trigger.view_id
        if parent_id is None or parent_id not in self.views:
            mine = [
                v for v in self.views.values() if v.user_id == trigger.user_id and v.type == "modal"
            ]
            if not mine:
                raise SlackError("not_found")
            parent_id = max(mine, key=lambda v: len(v.stack)).id
        view = self.push_view(parent_id, spec, trigger_id=str(params["trigger_id"]))
        return {"ok": True, "view": view.view}

    def _views_update(self, params: JSONDict) -> JSONDict:
        view_id, external_id = params.get("view_id"), params.get("external_id")
        if view_id:
            view = self.views.get(str(view_id))
        elif external_id:
            view = next((v for v in self.views.values() if v.external_id == external_id), None)
        else:
            raise SlackError("invalid_arguments", messages=["view_id or external_id is required"])
        if view is None:
            raise SlackError("not_found")
        if params.get("hash") and params["hash"] != view.hash:
            raise SlackError("hash_conflict")
        spec = self._view_spec(params, view.type, view_id=view.id)
        return {"ok": True, "view": self.replace_view(view.id, spec).view}

    def _views_publish(self, params: JSONDict) -> JSONDict:
        user_id = str(params.get("user_id", ""))
        if user_id not in self.users or not self._sees_user(self.users[user_id]):
            raise SlackError("user_not_found")
        spec = self._view_spec(params, "home")
        current = self.home(user_id)
        if current is not None and params.get("hash") and params["hash"] != current.hash:
            raise SlackError("hash_conflict")
        view_id = self._home_view_ids.setdefault(user_id, self._new_view_id())
        view = self._make_view(
            spec,
            view_id=view_id,
            user_id=user_id,
            trigger_id=None,
            stack=[view_id],
            team_id=self.users[user_id].team_id,
        )
        self.views[view_id] = view
        self._publish("view_published", view=view)
        return {"ok": True, "view": view.view}

    def _take_trigger(self, trigger_id: Any) -> Trigger:
        trigger = self._triggers.get(str(trigger_id or ""))
        if trigger is None:
            raise SlackError("invalid_trigger_id")
        if trigger.used:
            raise SlackError("exchanged_trigger_id")
        if self.clock() > trigger.expires:
            raise SlackError("expired_trigger_id")
        trigger.used = True
        return trigger

    def _view_spec(self, params: JSONDict, kind: str, *, view_id: str | None = None) -> JSONDict:
        spec = params.get("view")
        if not isinstance(spec, dict):
            raise SlackError(
                "invalid_arguments", messages=[f"must be an object {json_pointer('/view')}"]
            )
        problems = validate_view(spec)
        if spec.get("type") != kind:
            problems.insert(0, f"must be {kind} {json_pointer('/view/type')}")
        if problems:
            raise SlackError("invalid_arguments", messages=problems)
        external_id = spec.get("external_id")
        if external_id and any(
            v.external_id == external_id and v.id != view_id for v in self.views.values()
        ):
            raise SlackError("duplicate_external_id")
        return spec

    def _open(
        self,
        spec: JSONDict,
        user_id: str,
        trigger_id: str | None,
        *,
        stack: list[str],
        team_id: str | None = None,
        like: JSONDict | None = None,
    ) -> View:
        view_id = self._new_view_id()
        view = self._make_view(
            spec,
            view_id=view_id,
            user_id=user_id,
            trigger_id=trigger_id,
            stack=[*stack, view_id],
            team_id=team_id,
            like=like,
        )
        self.views[view_id] = view
        return view

    def _new_view_id(self) -> str:
        return f"V{next(self._ids):04d}{secrets.token_hex(3).upper()}"

    def _make_view(
        self,
        spec: JSONDict,
        *,
        view_id: str,
        user_id: str,
        trigger_id: str | None,
        stack: list[str],
        team_id: str | None = None,
        like: JSONDict | None = None,
    ) -> View:
        """The view as Slack returns it; ``app_installed_team_id`` is the enterprise ID for an
        org-wide install, as in Slack's payloads. ``like``: the view it replaces or is pushed on,
        whose workspace and installation it keeps."""
        caller = self._caller
        installed = caller.enterprise_id if caller.is_enterprise_install else caller.team_id
        bot_id = caller.bot_id
        if like is not None:
            team_id = like.get("team_id") or team_id
            installed = like.get("app_installed_team_id") or installed
            bot_id = like.get("bot_id") or bot_id
        view_hash = f"{int(self.clock())}.{secrets.token_urlsafe(6)}"
        body: JSONDict = {
            "id": view_id,
            "team_id": team_id or self._home_team(),
            "type": spec["type"],
            "blocks": self._fill_ids(spec.get("blocks", [])),
            "private_metadata": spec.get("private_metadata", ""),
            "callback_id": spec.get("callback_id", ""),
            "state": {"values": {}},
            "hash": view_hash,
            "title": spec.get("title"),
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "close": spec.get("close"),
            "submit": spec.get("submit"),
            "previous_view_id": stack[-2] if len(stack) > 1 else None,
            "root_view_id": stack[0],
            "app_id": self.app_id,
            "external_id": spec.get("external_id", ""),
            "app_installed_team_id": installed or self.team_id,
            "bot_id": bot_id,
        }
        return View(view_id, user_id, trigger_id, body, view_hash, list(stack))
