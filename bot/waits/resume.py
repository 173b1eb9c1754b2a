"""``/nexthink resume``: a click on the execution's question when it has one, else the tool of
roles with ``resume: true``.

An execution the bot asked a question for is resumed only as a click by the resumer would resume
it (``bot.waits.decide``): the same approvers, the requester never deciding (by the webhook's
``requester`` and by the bot's own record of the run), the same expiry, one decision per question;
the parameters must be one of the question's choices, the ``approverParameter`` is the resumer's
UPN whatever the command says, and the question's message is settled like a click (its buttons
stop working). Without a question, ``Runner.resume`` checks ``resume: true`` and sends the
trigger. Both count toward the per-user rate limit and keep to ``bot.limits``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from bot import limits
from bot.policy.mrkdwn import code
from bot.runs import Refusal, Requester, ResumeResult, Runner
from bot.store import WaitOption, WaitRecord
from bot.waits.decide import ClickRefused, decide
from bot.waits.deps import WaitDeps

__all__ = ["ResumeDeps", "Resumed", "resume"]


class ResumeDeps(WaitDeps, Protocol):
    runner: Runner


@dataclass(frozen=True)
class Resumed:
    """What a resume did: through the question (``wait``; ``refused`` says why nothing happened,
    else its message shows the decision), or without one (``result``, Nexthink's answer)."""

    wait: WaitRecord | None = None
    refused: ClickRefused | None = None
    result: ResumeResult | None = None


async def resume(
    deps: ResumeDeps,
    requester: Requester,
    workflow_uuid: str,
    execution_uuid: str,
    params: Mapping[str, str],
) -> Resumed:
    """Resume the execution; raises ``Refusal`` before anything is sent."""
    try:
        limits.check(params=params)
    except limits.LimitExceeded as exc:
        raise Refusal(exc.message) from None
    await deps.runner.admit(requester)  # the rate limit, and who the resumer is (fail closed)
    wait = await deps.store.wait_for_execution(workflow_uuid, execution_uuid)
    if wait is None:
        result = await deps.runner.resume(requester, workflow_uuid, execution_uuid, params)
        return Resumed(result=result)
    index = _choice(wait, params)
    refused = await decide(
        deps,
        wait_id=wait.id,
        option_index=index,
        user_id=requester.user_id,
        channel_id=requester.channel_id,
        message_ts=None,
    )
    return Resumed(wait=await deps.store.get_wait(wait.id) or wait, refused=refused)


def _without(parameters: Mapping[str, str], name: str | None) -> dict[str, str]:
    return {k: v for k, v in parameters.items() if k != name}


def _choice(wait: WaitRecord, params: Mapping[str, str]) -> int:
    """The question's option that ``params`` choose (its ``approverParameter`` aside)."""
    given = _without(params, wait.approver_parameter)
    options = wait.options
    if not given and len(options) == 1:
        return 0
    for index, option in enumerate(options):
        if _without(option.parameters, wait.approver_parameter) == given:
            return index
    raise Refusal(
        "This execution waits on a question the bot asked"
        + (f" in <#{wait.message_channel}>" if _is_channel(wait.message_channel) else "")
        + ", so it is resumed only with one of its choices: "
        + "; ".join(_written(o) for o in options[:5])
        + ". Or use the question's buttons.",
    )


def _written(option: WaitOption) -> str:
    return code(" ".join(f"{k}={v}" for k, v in option.parameters.items()) or "(no parameters)")


def _is_channel(channel: str | None) -> bool:
    return bool(channel) and str(channel)[0] in "CG"
