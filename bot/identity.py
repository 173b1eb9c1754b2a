"""Who is asking: Slack user → UPN (from the profile email) and user-group handles, cached.

A burst of commands from one person costs one ``users.info`` call: lookups are cached for
``ttl`` seconds and concurrent lookups of the same user share one call (single flight).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import workspaces
from bot.logging import get_logger

__all__ = ["Identity", "IdentityError", "Profile"]

log = get_logger(__name__)
K = TypeVar("K")
V = TypeVar("V")


class IdentityError(Exception):
    """A Slack user whose UPN cannot be known; ``str()`` is a sentence for that person."""


@dataclass(frozen=True)
class Profile:
    user_id: str
    name: str
    email: str | None
    upn: str | None
    deleted: bool = False
    is_bot: bool = False
    #: the workspace and Enterprise Grid org the person belongs to, as ``users.info`` says
    team_id: str | None = None
    enterprise_id: str | None = None
    #: Slack marks people of another organisation whom the app sees through no shared channel
    is_stranger: bool = False
    tz: str | None = None  #: the IANA time zone Slack shows the person's times in

    @property
    def label(self) -> str:
        return self.name or self.user_id


class _TTLCache(Generic[K, V]):
    """Values cached for ``ttl`` seconds; concurrent misses of one key share one load."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._values: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        hit = self._values.get(key)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        else:
            future.set_result(value)
            if self._ttl > 0:
                self._values[key] = (self._clock() + self._ttl, value)
            return value
        finally:
            del self._loading[key]


class Identity:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        rewrite_upn: Callable[[str], str] = lambda email: email,
        ttl: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._rewrite = rewrite_upn
        self._profiles: _TTLCache[str, Profile] = _TTLCache(ttl, clock)
        self._by_email: _TTLCache[str, str | None] = _TTLCache(ttl, clock)
        self._groups: _TTLCache[str, dict[str, frozenset[str]]] = _TTLCache(ttl, clock)
        self._home: _TTLCache[str, tuple[str | None, str | None]] = _TTLCache(ttl, clock)

    async def home(self) -> tuple[str | None, str | None]:
        """The bot's own workspace and Enterprise Grid org: ``auth.test`` of the installation the
        current work uses (``bot.workspaces``), cached per workspace."""
        here = workspaces.current()
        return await self._home.get(here.enterprise_id or here.team_id or "", self._load_home)

    async def is_external(self, profile: Profile) -> bool:
        """Whether the person belongs to another organisation (Slack Connect): marked a stranger,
        or neither of the bot's workspace nor of its Enterprise Grid org. Raises what
        ``auth.test`` raises when the bot's own organisation cannot be known."""
        if profile.is_stranger:
            return True
        team, enterprise = await self.home()
        if enterprise and profile.enterprise_id:
            return profile.enterprise_id != enterprise
        if profile.team_id is None:
            return False  # Slack names no workspace: nothing says it is another one
        return profile.team_id not in {team, enterprise}

    async def _load_home(self) -> tuple[str | None, str | None]:
        response = await self._client.auth_test()
        team = response.get("team_id")
        enterprise = response.get("enterprise_id")
        return (str(team) if team else None, str(enterprise) if enterprise else None)

    async def profile(self, user_id: str) -> Profile:
        """The user's profile; raises ``IdentityError`` for an unknown user."""
        return await self._profiles.get(user_id, lambda: self._load_profile(user_id))

    async def upn(self, user_id: str, *, own: bool = True) -> str:
        """The user's UPN: their profile email with the policy's domain rewrite applied.

        ``own``: the person asking is this user, so a refusal speaks of "your" profile."""
        profile = await self.profile(user_id)
        if profile.upn is None:
            whose = "Your" if own else f"<@{user_id}>'s"
            raise IdentityError(
                f"{whose} Slack profile has no email address, so the bot cannot tell Nexthink who "
                f"<@{user_id}> is. Ask a Slack admin to allow the bot to read emails "
                "(scope users:read.email) or to add an email to the profile."
            )
        return profile.upn

    async def user_for_email(self, email: str) -> str | None:
        """The Slack user id with this email (``users.lookupByEmail``), or None."""
        key = email.lower()
        here = workspaces.current()  # one email is a different account in each unrelated workspace
        where = here.enterprise_id or here.team_id or ""
        return await self._by_email.get(f"{where}/{key}", lambda: self._lookup_email(key))

    async def groups_of(self, user_id: str) -> frozenset[str]:
        """Handles (without ``@``) of the user groups this user belongs to."""
        members = await self._all_groups()
        return frozenset(handle for handle, ids in members.items() if user_id in ids)

    async def members_of(self, handle: str) -> frozenset[str]:
        members = await self._all_groups()
        return members.get(handle.lstrip("@").lower(), frozenset())

    async def _all_groups(self) -> dict[str, frozenset[str]]:
        """The groups of the current workspace (``bot.workspaces``) and its org's org-level
        ones: ``usergroups.list`` gets that workspace's ``team_id`` (``handlers.slack_client``),
        so one handle may name other people in another workspace."""
        here = workspaces.current()
        return await self._groups.get(here.team_id or here.enterprise_id or "", self._load_groups)

    async def _load_profile(self, user_id: str) -> Profile:
        try:
            response = await self._client.users_info(user=user_id)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else "unknown"
            if error == "user_not_found":
                raise IdentityError(f"Slack does not know the user <@{user_id}>.") from None
            raise
        user: dict[str, Any] = response.get("user") or {}
        profile: dict[str, Any] = user.get("profile") or {}
        email = profile.get("email") or None
        name = profile.get("display_name") or profile.get("real_name") or user.get("name") or ""
        enterprise_user = user.get("enterprise_user")
        enterprise = user.get("enterprise_id") or (
            enterprise_user.get("enterprise_id") if isinstance(enterprise_user, dict) else None
        )
        return Profile(
            user_id=user_id,
            name=str(name),
            email=email,
            upn=self._rewrite(email) if email else None,
            deleted=bool(user.get("deleted")),
            is_bot=bool(user.get("is_bot")),
            team_id=str(user["team_id"]) if user.get("team_id") else None,
            enterprise_id=str(enterprise) if enterprise else None,
            is_stranger=bool(user.get("is_stranger")),
            tz=str(user.get("tz")) if user.get("tz") else None,
        )

    async def _lookup_email(self, email: str) -> str | None:
        try:
            response = await self._client.users_lookupByEmail(email=email)
        except SlackApiError as exc:
            if exc.response is not None and exc.response.get("error") == "users_not_found":
                return None
            raise
        user = response.get("user") or {}
        user_id = user.get("id")
        return str(user_id) if user_id else None

    async def _load_groups(self) -> dict[str, frozenset[str]]:
        try:
            response = await self._client.usergroups_list(include_users=True)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else "unknown"
            log.warning("usergroups_unavailable", error=error, hint="add the usergroups:read scope")
            return {}
        groups: dict[str, frozenset[str]] = {}
        for group in response.get("usergroups") or []:
            handle = str(group.get("handle") or "").lower()
            if handle:
                groups[handle] = frozenset(str(u) for u in group.get("users") or [])
        return groups
