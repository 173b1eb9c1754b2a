"""The composition root: build the bot from settings, and run its background work.

``Bot.create`` wires settings → Nexthink client, store, policy, Slack identity, runner, the
Slack notifier the core reports through, and registers the listeners. ``Bot`` is the
``handlers.services.Services`` the listeners get, plus its lifecycle (background loops, close).
``serve``, ``console`` and the tests all build the bot this way, so they run the same code.
Nothing in the core imports this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped

from bot import approvals, consent, fleet, reminders, waits
from bot.audit import AuditTrail
from bot.catalogue import Catalogue
from bot.devices import Devices
from bot.followups import follow_forever
from bot.forms import FormSeal
from bot.identity import Identity
from bot.logging import get_logger
from bot.metrics import PENDING
from bot.nexthink.client import NexthinkClient
from bot.policy import Policy, PolicyError
from bot.ratelimit import RateLimiter
from bot.runs import Runner
from bot.schedule_loop import ScheduleLoop
from bot.settings import Settings
from bot.store import Store, StoreError
from handlers import register_all
from handlers.home import refresh_forever
from handlers.installs import NOT_INSTALLED, installation_store, oauth_settings
from handlers.services import Services
from handlers.slack_client import InstallationTokens, WorkspaceClient
from handlers.slack_notifier import SlackNotifier

__all__ = ["Bot", "StartupError"]


class StartupError(Exception):
    """The bot cannot start: a bad policy file or an unusable database; one clear line."""


log = get_logger(__name__)


class _SameToken(logging.Filter):
    """Drops the warning Bolt logs at every start that "`token` will be unused": Bolt reads
    ``SLACK_BOT_TOKEN`` from the environment itself, and the Web API client the bot gives it
    holds that same token (settings refuse ``SLACK_BOT_TOKEN`` beside OAuth), so there is
    nothing for an operator to act on."""

    text = warning_client_prioritized_and_token_skipped()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.text


_SAME_TOKEN = _SameToken()


def slack_client(settings: Settings) -> WorkspaceClient:
    """The one Web API client (``handlers.slack_client``): ``SLACK_BOT_TOKEN``'s, or with OAuth
    installs each workspace's own installation token."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return WorkspaceClient.build(
        token=None if settings.oauth else token, base_url=settings.slack_api_url
    )


def _oauth(settings: Settings, store: Store, slack: WorkspaceClient) -> dict[str, Any]:
    """Bolt's arguments for OAuth installs (``handlers.installs``); none with SLACK_BOT_TOKEN."""
    if not settings.oauth:
        return {}
    installations = installation_store(settings, store)
    slack.tokens = InstallationTokens(installations)
    flow = oauth_settings(settings, store, installations)
    return {
        "oauth_settings": flow,
        "user_facing_authorize_error_message": NOT_INSTALLED,
        # Bolt looks the installation up for each request; the cache only saves the auth.test
        # that would follow for a token it has already checked
        "authorize": AsyncInstallationStoreAuthorize(
            installation_store=installations,
            client_id=flow.client_id,
            client_secret=flow.client_secret,
            bot_only=True,
            cache_enabled=True,
            client=slack,
            logger=logging.getLogger("slack_bolt.authorize"),
        ),
    }


@dataclass
class Bot(Services):
    _sweeper: asyncio.Task[None] | None = field(default=None, repr=False)
    _loops: list[asyncio.Task[None]] = field(default_factory=list, repr=False)
    _loops_stop: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @classmethod
    async def create(
        cls,
        settings: Settings,
        *,
        nexthink: NexthinkClient | None = None,
        policy: Policy | None = None,
    ) -> Bot:
        """Everything that can fail on bad configuration fails here, before serving."""
        try:
            policy = policy or (
                Policy.load(settings.policy_file) if settings.policy_file else Policy.default()
            )
        except PolicyError as exc:
            raise StartupError(f"POLICY_FILE: {exc}") from None
        try:
            store = await Store.open(settings.database_url)
        except StoreError as exc:
            text = str(exc)  # some of the store's messages name the variable already
            raise StartupError(
                text if text.startswith("DATABASE_URL") else f"DATABASE_URL: {text}"
            ) from None
        slack = slack_client(settings)
        nexthink = nexthink or NexthinkClient.from_settings(settings)
        identity = Identity(
            slack, rewrite_upn=policy.rewrite_upn, ttl=settings.profile_cache_seconds
        )
        catalogue = Catalogue(nexthink)
        limiter = RateLimiter(policy.runs_per_user_per_minute, store=store)
        audit = AuditTrail(store, retention_days=settings.audit_retention_days)
        runner = Runner(
            nexthink=nexthink,
            catalogue=catalogue,
            identity=identity,
            policy=policy,
            store=store,
            limiter=limiter,
            audit=audit,
            devices=Devices(
                nexthink, settings.nexthink_devices_query_id, ttl=settings.devices_cache_seconds
            ),
        )
        bolt_log = logging.getLogger(f"slack_bolt.{AsyncApp.__name__}")
        if _SAME_TOKEN not in bolt_log.filters:
            bolt_log.addFilter(_SAME_TOKEN)
        app = AsyncApp(
            client=slack,
            signing_secret=(
                settings.slack_signing_secret.get_secret_value()
                if settings.slack_signing_secret
                else None
            ),
            request_verification_enabled=not settings.socket_mode,
            # every listener acks, spawns its work (bot.tasks) and returns: run it inline and
            # answer at once, instead of Bolt polling every 10 ms for the ack (bench/ack.py)
            process_before_response=True,
            raise_error_for_unhandled_request=False,
            **_oauth(settings, store, slack),
        )
        bot = cls(
            settings=settings,
            app=app,
            slack=slack,
            nexthink=nexthink,
            store=store,
            policy=policy,
            identity=identity,
            catalogue=catalogue,
            runner=runner,
            audit=audit,
            forms=FormSeal.from_secrets(
                s.get_secret_value() if s else None
                for s in (
                    settings.slack_signing_secret,
                    settings.slack_client_secret,
                    settings.slack_app_token,
                    settings.slack_bot_token,
                )
            ),
        )
        bot.notifier = SlackNotifier(bot)
        register_all(bot)
        log.info("bot_built", policy=policy.summary(), socket_mode=settings.socket_mode)
        return bot

    async def check_slack(self) -> dict[str, Any]:
        """``auth.test``: the token works and who the bot is. With OAuth installs each
        installation has its own token: Slack is then vouched for by its Web API answering."""
        if self.settings.oauth:
            await self.slack.api_test()
            self.slack_ok_at = time.monotonic()
            return {}
        response = await self.slack.auth_test()
        self.bot_user_id = response.get("user_id")
        self.slack_ok_at = time.monotonic()
        return dict(response.data) if isinstance(response.data, dict) else {}

    # -- background work: expiry sweeps ---------------------------------------------------

    def start_background(self, interval: float | None = None) -> None:
        """Sweep expired waits and approvals, send due reminders and escalations, and prune audit
        records past their retention and old fleet run previews, every ``interval`` seconds (default ``SWEEP_SECONDS``; any
        replica may); follow runs' outcomes (``bot.followups``), keep open Home tabs current
        (``handlers.home``) and run scheduled runs as they fall due (``bot.schedule_loop``)."""
        if interval is None:
            interval = self.settings.sweep_seconds
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(interval))
        if not self._loops:  # outcome follow-ups and Home tabs: loops of their own, not in tasks
            loop, stop = asyncio.get_running_loop(), self._loops_stop
            stop.clear()
            self.schedule_loop = ScheduleLoop(
                self,
                concurrency=self.settings.schedule_concurrency,
                tick=self.settings.schedule_tick_seconds,
            )
            self._loops = [
                loop.create_task(follow_forever(self, stop), name="followups"),
                loop.create_task(refresh_forever(self, stop), name="home_refresh"),
                # scheduled runs falling due: claimed by one replica each, at Nexthink's pace
                loop.create_task(self.schedule_loop.run_forever(stop), name="schedules"),
            ]

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            try:
                await waits.sweep_expired(self)
                await waits.sweep_stale(self)
                await approvals.sweep_expired(self)
                await approvals.sweep_stale(self)
                await consent.sweep_expired(self)
                await consent.sweep_stale(self)
                await reminders.sweep(self)
                await self.audit.prune()  # AUDIT_RETENTION_DAYS, in bounded batches
                await fleet.prune(self.store)  # fleet runs' previews, a day after
            except Exception:
                log.exception("sweep_failed")
            await asyncio.sleep(interval)

    async def stop_background(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        # the loops finish the pass they are in (not cut off mid-query), within a bound
        loops, self._loops = self._loops, []
        self._loops_stop.set()
        if loops:
            _, late = await asyncio.wait(loops, timeout=3.0)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def refresh_gauges(self) -> None:
        try:
            PENDING.labels("waits").set(await self.store.count_pending_waits())
            PENDING.labels("approvals").set(await self.store.count_pending_approvals())
        except Exception as exc:
            log.warning("gauges_unavailable", error=type(exc).__name__)

    async def close(self) -> None:
        await self.stop_background()
        await self.nexthink.aclose()
        await self.store.close()
        session = getattr(self.slack, "session", None)
        if session is not None and not session.closed:
            await session.close()
