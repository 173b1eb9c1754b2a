"""What the wait logic needs from the bot: the store, the lookups, the policy, Nexthink and a
notifier (``bot.notifier``)
and the audit trail. ``handlers.services.Services`` has all of them."""

from __future__ import annotations

from typing import Protocol

from bot.audit import AuditTrail
from bot.identity import Identity
from bot.nexthink.client import NexthinkClient
from bot.notifier import Notifier
from bot.policy import Policy
from bot.store import Store

__all__ = ["WaitDeps"]


class WaitDeps(Protocol):
    store: Store
    identity: Identity
    policy: Policy
    nexthink: NexthinkClient
    notifier: Notifier
    audit: AuditTrail
