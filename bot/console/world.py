"""A whole bot on loopback: the Nexthink sandbox, a local Slack, and ``serve`` in HTTP mode.

The console runs on this, and so do the end-to-end tests: the bot under test is the real
``Bot`` served by the real aiohttp server, receiving requests signed as Slack signs them and
calling Slack's Web API and Nexthink over sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bot.app import Bot
from bot.console.driver import SlackDriver
from bot.console.localslack import LocalSlack
from bot.sandbox import Sandbox
from bot.server import serve_bot
from bot.settings import Settings

__all__ = ["CHANNELS", "PEOPLE", "Person", "World"]

SIGNING_SECRET = "local-signing-secret"
WEBHOOK_TOKEN = "local-webhook-token"


@dataclass(frozen=True)
class Person:
    user_id: str
    name: str
    real_name: str
    email: str | None
    role: str


#: the local workspace's people; their emails are the sandbox's users' UPNs
PEOPLE: tuple[Person, ...] = (
    Person("U0ALICE", "alice", "Alice Martin", "alice@example.com", "end user"),
    Person("U0BOB", "bob", "Bob Keller", "bob@example.com", "IT support engineer (@it-support)"),
    Person("U0CAROL", "carol", "Carol Diaz", "carol@example.com", "IT lead, approver (@it-leads)"),
    Person("U0DAVE", "dave", "Dave Osei", "dave@example.com", "IT lead, approver (@it-leads)"),
    Person("U0ERIN", "erin", "Erin Novak", None, "a profile without an email"),
)
CHANNELS: dict[str, str] = {
    "C0GENERAL": "general",
    "C0SUPPORT": "it-support",
    "C0APPROVALS": "it-approvals",
}
GROUPS: dict[str, tuple[str, list[str]]] = {
    "it-support": ("S0SUPPORT", ["U0BOB"]),
    "it-leads": ("S0LEADS", ["U0CAROL", "U0DAVE"]),
}


@dataclass
class World:
    """Start with ``async with World(...)``; ``settings`` overrides are Settings field names.

    ``sandbox`` and ``slack`` may be given already started, to share them between worlds: a bot
    restarted on the same database, or two replicas on one PostgreSQL. A world stops only what
    it started itself.
    """

    database_url: str
    policy_file: Path | None = None
    nexthink_base_url: str | None = None  # None: the in-process sandbox
    nexthink_client_id: str | None = None
    nexthink_client_secret: str | None = None
    execution_delay: float = 2.0
    overrides: dict[str, Any] = field(default_factory=dict)
    #: None: Slack's own clock (the driver calls an answer after 3 s late, ``settle`` waits 10 s),
    #: as the console shows it. A number: how long the driver waits for each answer and ``settle``
    #: for the bot's work, without calling an answer late: for tests on busy cores, which check
    #: what the bot does (bench/ack.py measures how fast).
    patience: float | None = None

    sandbox: Sandbox | None = None
    slack: LocalSlack = field(default_factory=LocalSlack)
    bot: Bot | None = None
    driver: SlackDriver | None = None
    port: int = 0
    _server: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _owns_sandbox: bool = False
    _owns_slack: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        base_url = self.nexthink_base_url
        client_id = self.nexthink_client_id
        client_secret = self.nexthink_client_secret
        if base_url is None:
            if self.sandbox is None:
                self.sandbox = Sandbox(
                    execution_delay=self.execution_delay, webhook_token=WEBHOOK_TOKEN
                )
            if _started(self.sandbox):
                base_url = self.sandbox.url
            else:
                base_url = await self.sandbox.start()
                self._owns_sandbox = True
            client_id, client_secret = self.sandbox.client_id, self.sandbox.client_secret
        if not _started(self.slack):
            await self.slack.start()
            self._owns_slack = True
        for person in PEOPLE:
            if person.user_id not in self.slack.users:
                self.slack.add_user(
                    id=person.user_id,
                    name=person.name,
                    real_name=person.real_name,
                    email=person.email,
                )
        for channel_id, name in CHANNELS.items():
            self.slack.add_channel(id=channel_id, name=name)
        for handle, (group_id, members) in GROUPS.items():
            self.slack.add_usergroup(handle=handle, id=group_id, members=members)
        settings_values: dict[str, Any] = {
            "slack_bot_token": self.slack.bot_token,
            "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": self.slack.api_url,
            "nexthink_base_url": base_url,
            "nexthink_client_id": client_id,
            "nexthink_client_secret": client_secret,
            "nexthink_webhook_token": WEBHOOK_TOKEN,
            "database_url": self.database_url,
            "policy_file": self.policy_file,
            "port": 0,
            **self.overrides,
        }
        settings = Settings.load("serve", _env_file=None, **settings_values)
        self.bot = await Bot.create(settings)
        bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._server = asyncio.get_running_loop().create_task(
            serve_bot(self.bot, host="127.0.0.1", port=0, ready=bound.set_result, stop=self._stop)
        )
        waiting: set[asyncio.Future[Any]] = {bound, self._server}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if self._server in done:
            self._server.result()  # raises what stopped it
        self.port = bound.result()
        if self.sandbox is not None:
            self.sandbox.webhook_url = f"{self.url}/nexthink/waits"
        if self.patience is None:
            self.driver = SlackDriver(f"{self.url}/slack/events", SIGNING_SECRET, self.slack)
        else:
            self.driver = SlackDriver(
                f"{self.url}/slack/events",
                SIGNING_SECRET,
                self.slack,
                timeout=self.patience,
                ack_deadline=math.inf,
            )

    async def stop(self) -> None:
        """Stop what this World started, all of it even when one part fails."""
        self._stop.set()
        try:
            if self._server is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._server
            elif self.bot is not None:
                await self.bot.close()
        finally:
            if self.driver is not None:
                await self.driver.aclose()
            if self._owns_slack:
                await self.slack.stop()
            if self.sandbox is not None and self._owns_sandbox:
                await self.sandbox.stop()

    async def settle(self, within: float | None = None) -> None:
        """Wait until the bot has finished the work it acknowledged (and the sandbox its webhooks):
        up to ``within`` s, by default ``patience`` (10 s without)."""
        assert self.bot is not None
        if within is None:
            within = 10.0 if self.patience is None else self.patience
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            pending = self.bot.tasks.running()
            if pending:
                await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
                continue
            if self.sandbox is not None:
                await self.sandbox.wait_for_webhooks()
            if not self.bot.tasks.running():
                return
        raise TimeoutError("the bot did not finish its work in time")


def _started(server: Sandbox | LocalSlack) -> bool:
    try:
        server.url  # noqa: B018 - raises RuntimeError until started
    except RuntimeError:
        return False
    return True
