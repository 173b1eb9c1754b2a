"""``nexthink-bot``: serve | console | sandbox | check | audit."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Sequence

from bot.settings import Settings, SettingsError

__all__ = ["main"]

_SANDBOX_HELP = """\
A local stand-in for a Nexthink tenant: the OAuth token endpoint and the five Workflows API
endpoints at the reference's paths, a seeded catalogue of workflows, users and devices, and
fault switches. Point the bot at it with:
  NEXTHINK_BASE_URL=http://127.0.0.1:8088 NEXTHINK_CLIENT_ID=sandbox NEXTHINK_CLIENT_SECRET=sandbox
Faults (--fault, repeatable, or at run time with POST /_sandbox/faults) are written
ENDPOINT:KIND[:times=N][:retry_after=S][:delay=S], e.g. execute_v2:429:times=2:retry_after=1;
endpoints: token, execute_v1, execute_v2, trigger, list, get, nql, *; kinds: latency, 401,
429, 503, 500, timeout, reset, html, garbage.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nexthink-bot",
        description="Run Nexthink workflows from Slack. Configuration comes from the environment "
        "(and a .env file); see the README.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve", help="run the bot (Socket Mode if SLACK_APP_TOKEN is set, else HTTP)"
    )
    serve.add_argument("--host", default="0.0.0.0", help="interface to listen on (default 0.0.0.0)")  # noqa: S104
    from bot.console.cli import add_console_parser

    add_console_parser(sub)
    sandbox = sub.add_parser(
        "sandbox",
        help="a local Nexthink API stand-in",
        description=_SANDBOX_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8088)
    sandbox.add_argument(
        "--client-id", default="sandbox", help="accepted client id (default: sandbox)"
    )
    sandbox.add_argument(
        "--client-secret", default="sandbox", help="accepted client secret (default: sandbox)"
    )
    sandbox.add_argument(
        "--fault", action="append", default=[], metavar="SPEC", help="a fault to switch on at start"
    )
    sandbox.add_argument(
        "--token-lifetime", type=float, default=900.0, help="seconds a token lives (default 900)"
    )
    sandbox.add_argument(
        "--execution-delay", type=float, default=2.0, help="seconds an execution runs (default 2)"
    )
    sandbox.add_argument(
        "--webhook-url",
        help="where paused executions post their question, e.g. http://127.0.0.1:3000/nexthink/waits",
    )
    sandbox.add_argument("--webhook-token", help="bearer token for --webhook-url")
    sandbox.add_argument(
        "--without-v2",
        action="store_true",
        help="play an instance without the V2 execute (it answers 404; V1 is served)",
    )
    sub.add_parser("check", help="check the configuration, Nexthink and Slack, and report")
    from bot.audit_export import add_audit_parser

    add_audit_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["audit"]:  # its own parser: bad arguments are one line (exit 2)
        from bot.audit_export import run_audit

        try:
            sys.exit(run_audit(words[1:]))
        except KeyboardInterrupt:
            sys.exit(130)
    args = _parser().parse_args(words)
    try:
        if args.command == "serve":
            code = asyncio.run(_serve(args))
        elif args.command == "console":
            from bot.console.cli import run_console

            code = run_console(args)
        elif args.command == "sandbox":
            code = _sandbox(args)
        else:
            code = asyncio.run(_check())
    except SettingsError as exc:
        print(f"nexthink-bot: configuration error: {_one_line(exc)}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


def _configure_logging(settings: Settings) -> None:
    from bot.logging import configure

    configure(level=settings.log_level, fmt=settings.log_format, secrets=settings.secrets())


async def _serve(args: argparse.Namespace) -> int:
    from bot.app import Bot, StartupError
    from bot.server import serve_bot

    settings = Settings.load("serve")
    _configure_logging(settings)
    try:
        bot = await Bot.create(settings)
        # what start-up built lives as long as the process: keep it out of the cyclic GC's full
        # collections, which would otherwise stall the event loop ~20-100 ms each (bench/ack.py)
        gc.freeze()
        await serve_bot(bot, host=args.host)  # closes the bot whatever happens
    except StartupError as exc:
        print(f"nexthink-bot: {_one_line(exc)}", file=sys.stderr)
        return 2
    return 0


def _one_line(exc: BaseException) -> str:
    """A startup problem on one line (a YAML error, say, spans several)."""
    return " ".join(str(exc).split())


def _sandbox(args: argparse.Namespace) -> int:
    from bot.sandbox import run_sandbox

    try:
        asyncio.run(
            run_sandbox(
                args.host,
                args.port,
                faults=args.fault,
                webhook_url=args.webhook_url,
                webhook_token=args.webhook_token,
                client_id=args.client_id,
                client_secret=args.client_secret,
                token_lifetime=args.token_lifetime,
                execution_delay=args.execution_delay,
                without_v2=args.without_v2,
            )
        )
    except ValueError as exc:  # a malformed --fault
        print(f"nexthink-bot sandbox: {exc}", file=sys.stderr)
        return 2
    return 0


async def _check() -> int:
    from bot.check import run_check

    return await run_check()


if __name__ == "__main__":
    main()
