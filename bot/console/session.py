"""The console's read–eval–print loop over a ``World``: type as in Slack, read what Slack shows.

What the person types becomes exactly what Slack would send (a signed slash command, a button
click, a modal submission) through ``SlackDriver``; what the bot sends to Slack's Web API or a
``response_url`` arrives as ``LocalSlack`` events and is printed with its buttons numbered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from bot.console.localslack import Event, View
from bot.console.render import Choice, Renderer
from bot.console.world import CHANNELS, PEOPLE, World
from handlers import ids

__all__ = ["IN_SESSION_HELP", "TEAM_HELP", "Console"]

Reader = Callable[[str], Awaitable[str | None]]

IN_SESSION_HELP = """\
In the console:
  /nexthink ...        what you would type in Slack, e.g. /nexthink help, /nexthink list,
                       /nexthink run restart_teams mode=hard, or /nexthink alone for the form
  1, 2, ...            click the button with that number
  /as NAME             act as someone else: alice (end user), bob (support engineer),
                       carol or dave (IT leads, approvers), erin (no email), or a Slack user id
  /in CHANNEL          type in another channel: #general, #it-support, #it-approvals
  /people              who is who;  /wait [S]  let executions run for S seconds (default 3)
  /fault SPEC          switch on a sandbox fault, e.g. /fault execute_v2:503:times=1 (/fault clear)
  /help                this text;  /quit  leave (end of input works too)
A paused execution: /nexthink run request_software software=Visio (as alice) asks in
#it-approvals; then /as carol and click Approve.
A reminder and an escalation: /nexthink run reimage_device (as alice); /wait 7, /as carol: her
reminder links to the request; /wait 6, /as bob: he may approve it too. Away?
/nexthink delegate @dave names a stand-in; /nexthink delegate off ends it."""

TEAM_HELP = """  /team T0…            type in another workspace of the org: {teams}"""


class Console:
    def __init__(
        self,
        world: World,
        *,
        read: Reader,
        out: TextIO,
        user: str = "U0ALICE",
        channel: str = "C0GENERAL",
    ) -> None:
        self.world = world
        self.read = read
        self.out = out
        self.user = user
        self.channel = channel
        self.choices: dict[int, Choice] = {}
        self.renderer = Renderer(self._user_name, world.slack.channel_name)
        self._events: asyncio.Queue[Event] = world.slack.subscribe()
        #: answers given in a modal so far, by view id: a refreshed view does not ask them again
        self._answers: dict[str, dict[str, dict[str, Any]]] = {}

    # -- output ------------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _user_name(self, user_id: str) -> str:
        user = self.world.slack.users.get(user_id)
        return user.name if user else user_id

    @property
    def prompt(self) -> str:
        where = f"#{self.world.slack.channel_name(self.channel)}"
        if len(self.world.slack.teams) > 1 and self.world.driver is not None:
            where += f" ({self.world.driver.team_id})"
        return f"{self._user_name(self.user)} in {where}> "

    @property
    def help(self) -> str:
        """The in-session help; ``/team`` only when the world has several workspaces."""
        teams = self.world.slack.teams
        if len(teams) < 2:
            return IN_SESSION_HELP
        listed = ", ".join(f"{t.id} ({t.name})" for t in teams.values())
        lines = IN_SESSION_HELP.splitlines()
        at = next(i for i, line in enumerate(lines) if line.lstrip().startswith("/people")) + 1
        return "\n".join([*lines[:at], TEAM_HELP.format(teams=listed), *lines[at:]])

    def _visible(self, event: Event) -> bool:
        message = event.message
        if message is not None:
            if message.ephemeral and message.user != self.user:
                return False
            channel = self.world.slack.channels.get(message.channel)
            return not (
                channel is not None and channel.is_im and channel.user not in {None, self.user}
            )
        view = event.view
        return view is not None and view.user_id == self.user and event.kind != "view_closed"

    def show_events(self) -> View | None:
        """Print what happened since the last call; return the modal now open for this user."""
        modal: View | None = None
        while not self._events.empty():
            event = self._events.get_nowait()
            if not self._visible(event):
                continue
            if event.message is not None:
                message = event.message
                where = self.world.slack.channel_name(message.channel)
                channel = self.world.slack.channels.get(message.channel)
                label = "direct message" if channel is not None and channel.is_im else f"#{where}"
                note = " (only visible to you)" if message.ephemeral else ""
                note += " (edited)" if event.kind == "message_updated" else ""
                if event.kind == "message_deleted":
                    self.say(f"[{label}] a message was deleted")
                    continue
                lines, choices = self.renderer.blocks(
                    message.blocks, message.text, channel=message.channel, ts=message.ts
                )
                self.say(f"[{label}] nexthink{note}:")
                for line in lines:
                    self.say("  " + line)
                for choice in choices:
                    self.choices[choice.number] = choice
            elif event.view is not None and event.view.type == "modal":
                modal = self.world.slack.views.get(event.view.id)
        return modal

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> int:
        while True:
            line = await self.read(self.prompt)
            if line is None:
                return 0
            line = line.strip()
            if not line:
                continue
            if line in {"/quit", "/exit"}:
                return 0
            await self.handle(line)

    async def handle(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == ids.COMMAND or word == ids.COMMAND.lstrip("/"):
            assert self.world.driver is not None
            response = await self.world.driver.command(
                self.user, rest.strip(), channel_id=self.channel
            )
            if response.status != 200:
                self.say(f"Slack could not reach the bot: HTTP {response.status}")
        elif line.isdigit():
            await self.click(int(line))
        elif word == "/as":
            self.switch_user(rest.strip())
            return
        elif word == "/in":
            self.switch_channel(rest.strip())
            return
        elif word == "/team" and len(self.world.slack.teams) > 1:
            self.switch_team(rest.strip())
            return
        elif word == "/people":
            for person in PEOPLE:
                self.say(
                    f"  {person.name:<6} {person.user_id:<9} {person.email or '(no email)':<20} {person.role}"
                )
            return
        elif word == "/wait":
            seconds = float(rest) if rest.strip().replace(".", "", 1).isdigit() else 3.0
            await asyncio.sleep(min(seconds, 60.0))
        elif word == "/fault":
            self.fault(rest.strip())
            return
        elif word == "/help":
            self.say(self.help)
            return
        else:
            self.say(f"Not understood: {line!r}. Type /help for what the console understands.")
            return
        await self.world.settle()
        modal = self.show_events()
        while modal is not None:
            modal = await self.fill(modal)

    def switch_user(self, who: str) -> None:
        who = who.lstrip("@")
        for person in PEOPLE:
            if who.casefold() in {person.name, person.user_id.casefold()}:
                self.user = person.user_id
                self.say(f"You are now {person.real_name} ({person.user_id}): {person.role}.")
                return
        if who in self.world.slack.users:
            self.user = who
            self.say(f"You are now {who}.")
            return
        self.say(f"Nobody called {who!r}; /people lists who is here.")

    def switch_channel(self, where: str) -> None:
        name = where.lstrip("#")
        for channel_id, channel_name in CHANNELS.items():
            if name in {channel_name, channel_id}:
                self.channel = channel_id
                self.say(f"You are now typing in #{channel_name}.")
                return
        self.say(f"No channel {where!r}; try #general, #it-support or #it-approvals.")

    def switch_team(self, team_id: str) -> None:
        """Type in another workspace of the org: what you send carries its ``team_id``."""
        teams = self.world.slack.teams
        team = teams.get(team_id.upper()) or next(
            (t for t in teams.values() if team_id.casefold() in {t.name.casefold(), t.domain}),
            None,
        )
        if team is None:
            self.say(f"No workspace {team_id!r}; try {', '.join(sorted(teams))}.")
            return
        assert self.world.driver is not None
        self.world.driver.team_id = team.id
        self.say(f"You are now typing in the {team.name} workspace ({team.id}).")

    def fault(self, spec: str) -> None:
        sandbox = self.world.sandbox
        if sandbox is None:
            self.say("Faults can only be switched on in the built-in sandbox.")
            return
        if spec in {"clear", "off", ""}:
            sandbox.faults.clear()
            self.say("Sandbox faults cleared.")
            return
        from bot.sandbox import parse_fault

        try:
            sandbox.faults.add(parse_fault(spec))
        except ValueError as exc:
            self.say(f"Bad fault: {exc}")
            return
        self.say(f"Sandbox fault on: {spec}")

    async def click(self, number: int) -> None:
        choice = self.choices.get(number)
        if choice is None:
            self.say(f"There is no button [{number}].")
            return
        assert self.world.driver is not None
        if choice.view_id is not None:
            view = self.world.slack.views.get(choice.view_id)
            if view is None:
                self.say("That form is closed.")
                return
            await self.world.driver.click(self.user, view, choice.action_id, choice.value)
            return
        message = self.world.slack.find_message(choice.channel or "", choice.ts or "")
        if message is None:
            self.say("That message is gone.")
            return
        await self.world.driver.click(self.user, message, choice.action_id, choice.value)

    # -- modals as prompts ---------------------------------------------------------------

    async def fill(self, view: View) -> View | None:
        """Ask for each input of the modal, submit it; return a modal still open (or None)."""
        assert self.world.driver is not None
        spec = view.view
        self.say(f"┌ {self.renderer._plain(spec.get('title'))}")
        values = self._answers.setdefault(view.id, {})
        for block in spec.get("blocks") or []:
            if block.get("type") != "input":
                lines, _ = self.renderer.blocks([block], "")
                for line in lines:
                    self.say("│ " + line)
                continue
            element = block.get("element") or {}
            label = self.renderer._plain(block.get("label"))
            optional = bool(block.get("optional"))
            known = values.get(block["block_id"], {})
            if element.get("action_id") in known:
                self.say(f"│ {label}: {self._shown(element, known[element['action_id']])}")
                continue
            answer = await self._ask_element(label, element, optional)
            if answer is _CANCEL:
                self._answers.pop(view.id, None)
                self.say("└ closed")
                await self.world.driver.close_view(self.user, view.id)
                return None
            if answer is None:
                continue
            values.setdefault(block["block_id"], {})[element["action_id"]] = answer
            if block.get("dispatch_action"):
                await self.world.driver.click(self.user, view, element["action_id"], answer)
                await self.world.settle()
                refreshed = self.world.slack.views.get(view.id)
                self.show_events()
                if refreshed is not None and refreshed.hash != view.hash:
                    return refreshed
        if not spec.get("submit"):
            self.say("└ (nothing to submit)")
            await self.world.driver.close_view(self.user, view.id)
            return None
        response = await self.world.driver.submit_view(self.user, view.id, values)
        errors = response.body.get("errors") if isinstance(response.body, dict) else None
        if errors:
            for block_id, problem in errors.items():
                self.say(f"│ ✗ {block_id}: {self.renderer.text(problem)}")
                values.pop(block_id, None)  # ask again
            self.say("└ please correct and submit again")
            return self.world.slack.views.get(view.id)
        self._answers.pop(view.id, None)
        self.say("└ submitted")
        await self.world.settle()
        return self.show_events()

    def _shown(self, element: dict[str, Any], value: Any) -> str:
        for option in element.get("options") or []:
            if option.get("value") == value:
                return self.renderer._plain(option.get("text"))
        if isinstance(value, list):
            return ", ".join(self._user_name(v) for v in value)
        return str(value).replace("\n", ", ")

    async def _ask_element(self, label: str, element: dict[str, Any], optional: bool) -> Any:
        kind = element.get("type")
        hint = " (optional, Enter to skip)" if optional else ""
        if kind in {"static_select", "external_select"}:
            options = element.get("options") or []
            initial = (element.get("initial_option") or {}).get("value")
            self.say(f"│ {label}{hint}:")
            for number, option in enumerate(options, 1):
                mark = " (current)" if option.get("value") == initial else ""
                self.say(f"│   {number}. {self.renderer._plain(option.get('text'))}{mark}")
            while True:
                line = await self.read("│ choose a number: ")
                if line is None:
                    return _CANCEL
                line = line.strip()
                if not line:
                    return initial if initial or optional else _CANCEL
                if line.isdigit() and 1 <= int(line) <= len(options):
                    return options[int(line) - 1].get("value")
                self.say(f"│ a number from 1 to {len(options)}, please")
        if kind == "multi_users_select":
            line = await self.read(f"│ {label}{hint} — names or user ids, comma-separated: ")
            if line is None:
                return _CANCEL
            names = [n.strip().lstrip("@") for n in line.split(",") if n.strip()]
            found = []
            for name in names:
                match = next(
                    (u.id for u in self.world.slack.users.values() if name in {u.id, u.name}), None
                )
                if match is None:
                    self.say(f"│ nobody called {name!r}; skipped")
                else:
                    found.append(match)
            return found or None
        line = await self.read(f"│ {label}{hint}: ")
        if line is None:
            return _CANCEL
        line = line.strip()
        if not line:
            return None
        if element.get("multiline"):
            return "\n".join(
                part.strip() for part in line.replace(";", ",").split(",") if part.strip()
            )
        return line


_CANCEL: Any = object()
