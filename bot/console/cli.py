"""``nexthink-bot console``: the whole bot in a terminal, like Hubot's shell adapter."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

from bot.settings import Settings

__all__ = ["add_console_parser", "run_console"]

DEMO_POLICY = Path(__file__).with_name("demo-policy.yaml")

_DESCRIPTION = """\
The whole bot in a terminal: the same Bolt app and handlers as `serve`, talking to a local Slack
workspace whose messages are printed here. With no NEXTHINK_BASE_URL it runs on the built-in
Nexthink sandbox, so it works with no configuration at all. Without POLICY_FILE it uses a demo
policy (bot/console/demo-policy.yaml) with an end user, a support engineer and two approvers.

The sandbox's workflow `request_software` pauses and posts its question through the real
POST /nexthink/waits webhook: `/nexthink run request_software software=Visio` (the `software=`
parameter is required) as alice, then approve it as carol (see below). The demo policy reminds
approvers within seconds and escalates soon after (SWEEP_SECONDS is 1 here unless set): as alice,
`/nexthink run reimage_device`; carol and dave get a reminder with a link by direct message every
6 seconds, and after 12 seconds bob (@it-support) is told he may approve too. When standard input
is not a terminal, commands are read line by line and the console exits at the end of input
(status 0; 1 if the bot failed).

Consent: in the demo policy `restart_teams` needs the consent of the person it runs on. As bob,
`/nexthink run restart_teams user:alice@example.com`; then `/as alice` and answer Allow or Not now
(bob is told either way). Which computer: the sandbox answers the devices query (alice has
LAPTOP-ALICE and DESKTOP-ALICE): as alice, `/nexthink run clear_disk_space` says which device is
used, `device:DESKTOP-ALICE` picks the other, and the run form (`/nexthink`) offers a device menu.
"""


def add_console_parser(sub: Any) -> None:
    from bot.console.session import IN_SESSION_HELP

    parser = sub.add_parser(
        "console",
        help="the bot in a terminal, on the built-in sandbox",
        description=_DESCRIPTION,
        epilog=IN_SESSION_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--user", default="alice", help="who you are at start (default: alice)")
    parser.add_argument(
        "--channel", default="#general", help="where you type at start (default: #general)"
    )


def run_console(args: argparse.Namespace) -> int:
    settings = Settings.load("console")
    from bot.logging import configure

    # the terminal is for the conversation: the bot's own log goes to stderr, warnings and up
    configure(
        level="DEBUG" if settings.log_level == "DEBUG" else "WARNING",
        fmt="console",
        secrets=settings.secrets(),
        stream=sys.stderr,
    )
    return asyncio.run(_main(settings, args))


async def _main(settings: Settings, args: argparse.Namespace) -> int:
    from bot.console.session import Console
    from bot.console.world import World

    with tempfile.TemporaryDirectory(prefix="nexthink-console-") as scratch:
        # the console keeps nothing unless DATABASE_URL is set explicitly
        database_url = (
            settings.database_url
            if "database_url" in settings.model_fields_set
            else f"sqlite:///{scratch}/console.db"
        )
        policy = settings.policy_file or DEMO_POLICY
        overrides: dict[str, Any] = {}
        if settings.nexthink_devices_query_id:
            overrides["nexthink_devices_query_id"] = settings.nexthink_devices_query_id
        elif settings.nexthink_base_url is None:  # the sandbox answers the devices query
            overrides["nexthink_devices_query_id"] = "#chatops_user_devices"
        if "sweep_seconds" not in settings.model_fields_set:
            overrides["sweep_seconds"] = 1.0  # the demo policy's reminders come within seconds
        if settings.nexthink_status_query_id:
            overrides["nexthink_status_query_id"] = settings.nexthink_status_query_id
        elif settings.nexthink_base_url is None:
            # the sandbox answers any status query: follow outcomes, quickly, as a demo
            overrides.update(
                nexthink_status_query_id="#chatops_execution_status",
                followup_first_poll_seconds=2.5,
                followup_tick_seconds=0.5,
            )
        world = World(
            database_url=database_url,
            policy_file=policy,
            nexthink_base_url=settings.nexthink_base_url,
            nexthink_client_id=settings.nexthink_client_id,
            nexthink_client_secret=(
                settings.nexthink_client_secret.get_secret_value()
                if settings.nexthink_client_secret
                else None
            ),
            overrides=overrides,
        )
        async with world:
            where = (
                f"the built-in Nexthink sandbox at {world.sandbox.url if world.sandbox else '?'} (no NEXTHINK_BASE_URL set)"
                if settings.nexthink_base_url is None
                else f"Nexthink at {settings.nexthink_base_url}"
            )
            policy_text = (
                "the demo policy"
                if settings.policy_file is None
                else f"policy {settings.policy_file}"
            )
            out = sys.stdout
            out.write(
                f"nexthink-bot console on {where}, with {policy_text}. Type /help for help.\n"
            )
            console = Console(world, read=_reader(out), out=out)
            console.switch_user(args.user)
            console.switch_channel(args.channel)
            code = await console.run()
            await world.settle()
            console.show_events()
            assert world.bot is not None
            failures = world.bot.tasks.failures
        if failures:
            sys.stderr.write(
                f"nexthink-bot console: {failures} background task(s) failed; see the log above\n"
            )
            return 1
        return code


def _reader(out: TextIO) -> Callable[[str], Awaitable[str | None]]:
    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):  # no readline on Windows
            import readline  # noqa: F401 - line editing and history for input()

    async def read(prompt: str) -> str | None:
        if interactive:
            try:
                typed: str = await asyncio.to_thread(input, prompt)
                return typed
            except EOFError:
                out.write("\n")
                return None
        line: str = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return None
        out.write(prompt + line if line.endswith("\n") else prompt + line + "\n")
        return line.rstrip("\n")

    return read
