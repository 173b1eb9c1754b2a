"""LocalSlack's messages: ``chat.postMessage``, ``chat.postEphemeral``, ``chat.update``,
``chat.delete``, ``chat.getPermalink``, and `deliver`, which shows a response-URL payload or an
ack's body as Slack does.

A permalink is ``{url}/archives/{channel}/p{ts without the dot}``, as Slack writes them but on
LocalSlack's own address: ``GET`` on it answers the message (`message_at`), so a test can follow
the link a reminder carries."""

from __future__ import annotations

from typing import Any

from bot.console.blockkit import validate_blocks
from bot.console.localslack.records import Channel, JSONDict, Message, SlackError
from bot.console.localslack.workspace import Workspace, truthy

__all__ = ["ChatMethods"]


class ChatMethods(Workspace):
    """Posting, updating and deleting messages."""

    def deliver(
        self,
        user_id: str,
        channel_id: str,
        payload: JSONDict,
        *,
        via: str,
        target: tuple[str, str] | None = None,
    ) -> Message | None:
        """Show a response-URL style payload (also an ack's body) as Slack would; returns the message."""
        blocks = payload.get("blocks")
        if truthy(payload.get("delete_original")):
            found = self.find_message(*target) if target else None
            if found is None:
                raise SlackError("message_not_found")
            self._remove(found)
            return None
        if blocks is not None and (problems := validate_blocks(blocks)):
            raise SlackError("invalid_blocks", messages=problems)
        text = str(payload.get("text") or "")
        if not text and not blocks:
            raise SlackError("no_text")
        if truthy(payload.get("replace_original")) and target:
            found = self.find_message(*target)
            if found is not None:
                found.text, found.blocks = text, self._fill_ids(blocks)
                found.updated += 1
                self._publish("message_updated", message=found)
                return found
        self._ensure_channel(channel_id)
        ephemeral = payload.get("response_type", "ephemeral") != "in_channel"
        message = Message(
            channel_id,
            self._next_ts(),
            user_id if ephemeral else None,
            text,
            self._fill_ids(blocks),
            thread_ts=payload.get("thread_ts"),
            ephemeral=ephemeral,
            via=via,
            author=self.bot_user_id,
        )
        self._add(message)
        return message

    def _chat_post_message(self, params: JSONDict) -> JSONDict:
        channel = self._resolve_channel(params.get("channel"))
        text, blocks = self._message_content(params, required=True)
        message = Message(
            channel.id,
            self._next_ts(),
            None,
            text,
            blocks,
            thread_ts=params.get("thread_ts") or None,
            author=self._caller.bot_user_id,
            attachments=params.get("attachments"),
            metadata=params.get("metadata"),
        )
        self._add(message)
        return {
            "ok": True,
            "channel": channel.id,
            "ts": message.ts,
            "message": self._slack_message(message),
        }

    def _chat_post_ephemeral(self, params: JSONDict) -> JSONDict:
        channel = self._resolve_channel(params.get("channel"))
        user_id = params.get("user")
        if not user_id:
            raise SlackError("invalid_arguments", messages=["missing required field: user"])
        if user_id not in self.users or not self._sees_user(self.users[str(user_id)]):
            raise SlackError("user_not_found")
        text, blocks = self._message_content(params, required=True)
        message = Message(
            channel.id,
            self._next_ts(),
            str(user_id),
            text,
            blocks,
            thread_ts=params.get("thread_ts") or None,
            ephemeral=True,
            via="chat.postEphemeral",
            author=self._caller.bot_user_id,
            attachments=params.get("attachments"),
        )
        self._add(message)
        return {"ok": True, "message_ts": message.ts}

    def _chat_update(self, params: JSONDict) -> JSONDict:
        message = self._own_message(params, "cant_update_message")
        text, blocks = self._message_content(params, required=False)
        if "text" in params or "markdown_text" in params:
            message.text = text
        if "blocks" in params:
            message.blocks = blocks
        if "attachments" in params:
            message.attachments = params["attachments"]
        message.updated += 1
        self._publish("message_updated", message=message)
        return {
            "ok": True,
            "channel": message.channel,
            "ts": message.ts,
            "text": message.text,
            "message": self._slack_message(message),
        }

    def _chat_get_permalink(self, params: JSONDict) -> JSONDict:
        channel = self._resolve_channel(params.get("channel"))
        ts = str(params.get("message_ts") or "")
        if not ts:
            raise SlackError("invalid_arguments", messages=["missing required field: message_ts"])
        message = self.find_message(channel.id, ts)
        if message is None or message.ephemeral:
            raise SlackError("message_not_found")
        return {"ok": True, "channel": channel.id, "permalink": self.permalink(channel.id, ts)}

    def permalink(self, channel: str, ts: str) -> str:
        return f"{self.url}/archives/{channel}/p{ts.replace('.', '')}"

    def message_at(self, permalink: str) -> Message | None:
        """The message a permalink of this LocalSlack points at (None: none, or not ours)."""
        prefix = f"{self.url}/archives/"
        if not permalink.startswith(prefix):
            return None
        channel, _, stamp = permalink[len(prefix) :].partition("/p")
        digits = stamp.split("?", 1)[0]
        if len(digits) < 7 or not digits.isdigit():
            return None
        found = self.find_message(channel, f"{digits[:-6]}.{digits[-6:]}")
        return None if found is None or found.ephemeral else found

    def _chat_delete(self, params: JSONDict) -> JSONDict:
        message = self._own_message(params, "cant_delete_message")
        self._remove(message)
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _message_content(
        self, params: JSONDict, *, required: bool
    ) -> tuple[str, list[JSONDict] | None]:
        text = str(params.get("text") or params.get("markdown_text") or "")
        blocks = params.get("blocks")
        if isinstance(blocks, str):
            raise SlackError("invalid_blocks_format")
        if blocks is not None and (problems := validate_blocks(blocks)):
            raise SlackError("invalid_blocks", messages=problems)
        if required and not text and not blocks and not params.get("attachments"):
            raise SlackError("no_text")
        if len(text) > 40000:
            raise SlackError("msg_too_long")
        filled: list[JSONDict] | None = self._fill_ids(blocks)
        return text, filled

    def _own_message(self, params: JSONDict, not_mine: str) -> Message:
        channel = self.channels.get(str(params.get("channel", "")))
        if channel is not None and not self._reaches(channel.team_id):
            raise SlackError("channel_not_found")
        message = self.find_message(str(params.get("channel", "")), str(params.get("ts", "")))
        if message is None or message.ephemeral:
            raise SlackError("message_not_found")
        if message.author != self._caller.bot_user_id:
            raise SlackError(not_mine)
        return message

    def _resolve_channel(self, channel_id: Any) -> Channel:
        key = str(channel_id or "")
        if key in self.channels:
            if not self._reaches(self.channels[key].team_id):
                raise SlackError("channel_not_found")  # another workspace's, or not added there
            return self.channels[key]
        if key[:1] in ("U", "W") and key in self.users and self._sees_user(self.users[key]):
            return self.channels[self.dm_channel(key)]
        by_name = next(
            (
                c
                for c in self.channels.values()
                if c.name == key.lstrip("#") and c.team_id == self._home_team()
            ),
            None,
        )
        if by_name is not None and not by_name.is_im:
            return by_name
        if self.auto_create_channels and key[:1] in ("C", "G") and key[1:].isalnum():
            return self.add_channel(id=key, name=key.lower())
        raise SlackError("channel_not_found")
