"""The right form of each subcommand: ``usage(sub)`` for an error, ``HELP`` for ``/nexthink help``."""

from __future__ import annotations

__all__ = ["FORMS", "HELP", "SUBCOMMANDS", "guess_subcommand", "usage"]

SUBCOMMANDS = (
    "run",
    "list",
    "info",
    "resume",
    "history",
    "scheduled",
    "cancel",
    "delegate",
    "help",
)

FORMS: dict[str, tuple[str, str, str]] = {
    # name: (form, example, what it does)
    "run": (
        "/nexthink run WORKFLOW [device:NAME|UUID]… [user:@person|UPN|SID]… [query:#QUERY_ID] [name=value]… [visible] "
        "[at HH:MM | at YYYY-MM-DD HH:MM | in 2h]",
        '/nexthink run clear_disk_space device:LAPTOP-42 note="disk full"',
        "run a workflow; with no `device:` or `user:` it runs for you (Nexthink picks your most recent device); "
        "`query:#id` runs it on what a saved NQL query returns, after showing you the count; "
        "`visible` posts it in the channel, where its thread follows the outcome; `at 22:00` "
        "(today or tomorrow, your Slack time zone), `at 2026-12-24 22:00` or `in 2h`/`in 30m`/`in 45s` "
        "schedules it for later",
    ),
    "list": (
        "/nexthink list [filter]",
        "/nexthink list teams",
        "the workflows you may run, optionally only those whose id, alias or name contains the filter",
    ),
    "info": (
        "/nexthink info WORKFLOW",
        "/nexthink info restart_teams",
        "one workflow's details",
    ),
    "resume": (
        "/nexthink resume WORKFLOW_UUID EXECUTION_UUID [name=value]…",
        "/nexthink resume 3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a fecab46b-ee58-b8bc-b61e-912a2dc2bcbc decision=approved",
        "resume an execution that waits for an event",
    ),
    "history": ("/nexthink history", "/nexthink history", "your recent requests and their ids"),
    "delegate": (
        "/nexthink delegate [@someone|UPN [until YYYY-MM-DD] | off]",
        "/nexthink delegate carol@example.com until 2026-12-24",
        "name a stand-in who decides approvals for you while you are away (and gets your "
        "reminders); alone it shows yours, `off` ends it",
    ),
    "scheduled": (
        "/nexthink scheduled [@someone]",
        "/nexthink scheduled",
        "your scheduled runs that have not run yet (auditors may name someone)",
    ),
    "cancel": (
        "/nexthink cancel ID",
        "/nexthink cancel K7Q2M9XD",
        "cancel a scheduled run (its id is in the reply and in `/nexthink scheduled`)",
    ),
    "help": ("/nexthink help [subcommand]", "/nexthink help run", "this help, or one subcommand's"),
}


def usage(sub: str | None = None) -> str:
    """The right form of ``sub`` with an example (mrkdwn); every form when ``sub`` is unknown."""
    form = FORMS.get((sub or "").casefold())
    if form is None:
        lines = "\n".join(f"• `{f}`" for f, _, _ in FORMS.values())
        return f"Usage:\n• `/nexthink` (opens the run form)\n{lines}"
    return f"Usage: `{form[0]}`\nExample: `{form[1]}`"


def guess_subcommand(text: str) -> str | None:
    """The subcommand the raw text starts with, if it names one (for an error before parsing)."""
    head = text.split(maxsplit=1)
    name = head[0].casefold() if head else ""
    return name if name in FORMS else None


HELP = "\n".join(
    [
        "*`/nexthink` runs Nexthink workflows from Slack.*",
        "• `/nexthink`: open the run form",
        *(f"• `{form}`: {what}\n    e.g. `{example}`" for form, example, what in FORMS.values()),
        "*Targets:* `device:` takes a device name or its Collector UUID; `user:` takes an @mention, "
        "a UPN (`alice@example.com`) or a SID (`S-1-5-21-…`). Repeat them for several targets.",
        "*Values with spaces* are quoted: `note=\"disk full\"` or `note='disk full'`. Inside quotes, "
        "write a quote as `\\\"` or by doubling it (`'it''s'`), and a backslash as `\\\\`.",
        "`WORKFLOW` is an id shown by `/nexthink list` or an alias set by your administrators.",
    ]
)
