"""A LocalSlack in its own process, for the benchmarks: the Slack Web API the bot calls.

    python bench/_slack_server.py --port 8101 --control-port 8102 --users 50

Serves ``bot.console.localslack.LocalSlack`` (bot token ``xoxb-bench``) on ``--port`` with
``--users`` people ``U0BENCH000``... (emails ``bench000@example.com``..., which the sandbox
does not know: their executions fail per target, which is fine here), and on
``--control-port`` a few routes of its own under ``/_bench``:

- ``POST /_bench/commands`` ``{"events_url", "commands": [[user_id, text], ...]}``: slash
  commands built and signed by a ``SlackDriver`` on this LocalSlack (so their response URLs
  and trigger ids are this LocalSlack's), as ``{"commands": [{"body", "headers"}, ...]}``.
- ``POST /_bench/clicks`` ``{"events_url", "channel", "action_id", "user", "max"}``: up to
  ``max`` signed ``block_actions`` of ``user`` clicking the button ``action_id`` of messages in
  ``channel`` not clicked before (each message once), as ``{"clicks": [{"body", "headers"}]}``;
  ``C0APPROVALS`` exists for approval requests.
- ``GET /_bench/stats``: Web API calls per method, ``users.info`` calls per user, response-URL
  posts that were accepted.

Runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections import Counter
from urllib.parse import urlencode

from _support import BOT_TOKEN, HOST, SIGNING_SECRET
from aiohttp import web

from bot.console.driver import SlackDriver
from bot.console.localslack import LocalSlack

USERS: web.AppKey[LocalSlack] = web.AppKey("slack", LocalSlack)
CLICKED: web.AppKey[set[tuple[str, str]]] = web.AppKey("clicked", set)


def user_id(i: int) -> str:
    return f"U0BENCH{i:03d}"


async def _commands(request: web.Request) -> web.Response:
    slack = request.app[USERS]
    data = await request.json()
    driver = SlackDriver(data["events_url"], SIGNING_SECRET, slack)
    try:
        now = int(time.time())
        out = []
        for user, text in data["commands"]:
            body = urlencode(driver.command_payload(user, text, channel_id="C0SUPPORT")).encode()
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
                **driver.sign(body, now),
            }
            out.append({"body": body.decode(), "headers": headers})
    finally:
        await driver.aclose()
    return web.json_response({"commands": out})


def _has_action(blocks: list[dict[str, object]] | None, action_id: str) -> bool:
    for block in blocks or ():
        elements = block.get("elements")
        if isinstance(elements, list) and any(
            isinstance(e, dict) and e.get("action_id") == action_id for e in elements
        ):
            return True
    return False


async def _clicks(request: web.Request) -> web.Response:
    slack = request.app[USERS]
    clicked = request.app[CLICKED]
    data = await request.json()
    driver = SlackDriver(data["events_url"], SIGNING_SECRET, slack)
    try:
        now = int(time.time())
        out: list[dict[str, object]] = []
        for message in slack.messages_in(data["channel"]):
            if len(out) >= int(data["max"]):
                break
            key = (message.channel, message.ts)
            if key in clicked or not _has_action(message.blocks, data["action_id"]):
                continue
            clicked.add(key)
            payload = driver.click_payload(data["user"], message, data["action_id"])
            body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
                **driver.sign(body, now),
            }
            out.append({"body": body.decode(), "headers": headers})
    finally:
        await driver.aclose()
    return web.json_response({"clicks": out})


async def _stats(request: web.Request) -> web.Response:
    slack = request.app[USERS]
    methods = Counter(call.method for call in slack.calls)
    users_info = Counter(str(call.params.get("user")) for call in slack.calls_to("users.info"))
    replies = sum(1 for call in slack.calls_to("response_url") if call.ok)
    return web.json_response(
        {"calls": dict(methods), "users_info": dict(users_info), "response_url_ok": replies}
    )


async def main(port: int, control_port: int, users: int) -> None:
    slack = LocalSlack(bot_token=BOT_TOKEN)
    for i in range(users):
        slack.add_user(
            id=user_id(i),
            name=f"bench{i:03d}",
            real_name=f"Bench {i}",
            email=f"bench{i:03d}@example.com",
        )
    slack.add_channel(id="C0SUPPORT", name="it-support")
    slack.add_channel(id="C0APPROVALS", name="it-approvals")
    await slack.start(HOST, port)
    control = web.Application(client_max_size=64 * 1024 * 1024)
    control[USERS] = slack
    control[CLICKED] = set()
    control.router.add_post("/_bench/commands", _commands)
    control.router.add_post("/_bench/clicks", _clicks)
    control.router.add_get("/_bench/stats", _stats)
    runner = web.AppRunner(control, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, control_port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(
        f"LocalSlack on {slack.api_url}, control on http://{HOST}:{control_port}/_bench", flush=True
    )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await slack.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.control_port, args.users))
