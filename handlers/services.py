"""What every listener gets: the Bolt app to register on, the Slack client, and the core.

Built by the composition root (``bot.app.Bot.create``); the listeners and views only read it.
The core never sees this class: each core module names the few parts it needs as a
``Protocol`` (``bot.waits.WaitDeps``, ``bot.approvals.ApprovalDeps``, ...), which this satisfies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.audit import AuditTrail
from bot.catalogue import Catalogue
from bot.forms import FormSeal
from bot.identity import Identity
from bot.nexthink.client import NexthinkClient
from bot.notifier import Notifier
from bot.policy import Policy
from bot.runs import Runner
from bot.schedule_loop import ScheduleLoop
from bot.settings import Settings
from bot.store import Store
from bot.tasks import Tasks
from bot.viewers import HomeViewers

__all__ = ["Services"]


@dataclass
class Services:
    settings: Settings
    app: AsyncApp
    slack: AsyncWebClient
    nexthink: NexthinkClient
    store: Store
    policy: Policy
    identity: Identity
    catalogue: Catalogue
    runner: Runner
    #: the audit trail (``bot.audit``): every event of the contract is written through it
    audit: AuditTrail
    #: seals what forms carry (``bot.forms``); set when built, from the Slack secrets
    forms: FormSeal = field(default_factory=lambda: FormSeal.from_secrets(()))
    tasks: Tasks = field(default_factory=Tasks)
    bot_user_id: str | None = None
    slack_ok_at: float | None = None
    home_viewers: HomeViewers = field(default_factory=HomeViewers)
    #: the loop that runs scheduled runs (``bot.schedule_loop``), while background work runs
    schedule_loop: ScheduleLoop | None = None
    #: how the core reports to Slack: ``handlers.slack_notifier.SlackNotifier``, set when built
    notifier: Notifier = field(init=False, repr=False)
