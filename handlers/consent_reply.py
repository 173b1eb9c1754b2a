"""Where the requester's one reply about a consent round lives, and how it is kept up to date.

The first render (``first``) posts it: through the command's response URL when the round holds
one (nothing else of the run answers through it), else as a direct message. Later renders
replace it: ``chat.update`` once it is a message, else the response URL's ``replace_original``
while Slack takes it (30 minutes, 5 uses). When Slack refuses the URL, the one replica that
drops it from the round (``drop_round_url``, conditional) posts the state as a direct message and
records it; from then on that message is updated in place. Every render is of the store's state
(``bot.consent_rounds.show``), so a render skipped during the move is made up by the mover's.
"""

from __future__ import annotations

from bot.logging import get_logger
from bot.notifier import RoundView
from handlers import delivery
from handlers.consent_views import round_message
from handlers.services import Services

__all__ = ["show_round"]

log = get_logger(__name__)


async def show_round(bot: Services, view: RoundView, *, first: bool) -> None:
    found = view.round
    code = None
    if found.schedule_id is not None:
        schedule = await bot.store.get_schedule(found.schedule_id)
        code = schedule.code if schedule is not None else None
    message = round_message(view, schedule_code=code)
    if found.reply_channel and found.reply_ts:
        await delivery.update_message(bot, (found.reply_channel, found.reply_ts), message)
        return
    url = found.response_url
    if url:
        if await delivery.send_to_response_url(bot, url, message, replace=not first):
            return
        if not await bot.store.drop_round_url(found.id, url):
            return  # another replica moves it, and renders what it reads afterwards
        log.info("consent_reply_moved", round=found.id)
    elif not first:
        return  # not posted yet, or being moved by another replica
    where = await delivery.post_message(bot, found.requester_id, message)
    if where is None:
        log.error("reply_lost", user=found.requester_id, round=found.id)
        return
    await bot.store.set_round_reply(found.id, *where)
