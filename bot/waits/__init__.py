"""Paused executions: Nexthink asks (``POST /nexthink/waits``), Slack answers (a button).

A Nexthink workflow that reaches an "API listener" Wait step calls the webhook from its
Service/API thinklet (10-second timeout; its HTTP side is ``bot.webhook_http``). The bot records
the wait, posts the question with one button per option (``posting``), and answers
``201 {"id", "channel", "ts"}``. A click by an allowed person claims the wait atomically in the
store (so one click wins, across replicas), calls Nexthink's trigger endpoint once, and the
message shows who decided, when, and Nexthink's answer (``decide``). Expired and abandoned
waits are swept (``sweeps``).

* ``request``: the webhook body model and its validation messages
* ``posting``: record and post a question once
* ``decide``: a click
* ``sweeps``: expiry and stale claims
* ``resume``: ``/nexthink resume``, a click on the question when there is one
"""

from bot.waits.decide import ClickRefused, decide
from bot.waits.deps import WaitDeps
from bot.waits.posting import WaitRefused, post_wait
from bot.waits.request import MAX_BODY, WaitRequest, describe
from bot.waits.resume import Resumed, ResumeDeps, resume
from bot.waits.sweeps import STALE_AFTER, sweep_expired, sweep_stale

__all__ = [
    "MAX_BODY",
    "STALE_AFTER",
    "ClickRefused",
    "ResumeDeps",
    "ResumeResult",
    "Resumed",
    "WaitDeps",
    "WaitRefused",
    "WaitRequest",
    "decide",
    "describe",
    "post_wait",
    "resume",
    "sweep_expired",
    "sweep_stale",
]
