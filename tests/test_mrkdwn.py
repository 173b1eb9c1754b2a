"""One rendering path: the core's reasons and the views escape outside text alike."""

from __future__ import annotations

import pytest

from bot import mrkdwn
from bot.policy import mrkdwn as policy_mrkdwn
from bot.text import outside
from handlers import blocks

HOSTILE = [
    "a`b",
    "x\ny",
    "<!channel>",
    "<https://evil.example|click>",
    "*bold* _it_ ~s~",
    "```fence",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_policy_reasons_and_views_render_a_code_span_alike(text: str) -> None:
    rendered = policy_mrkdwn.code(text)
    assert rendered == blocks.code(outside(text), limit=None) == mrkdwn.code(outside(text), None)
    inner = rendered[1:-1]
    assert "`" not in inner
    assert "\n" not in inner
    assert "<" not in inner


def test_the_views_reexport_the_one_renderer() -> None:
    assert blocks.shown is mrkdwn.shown
    assert blocks.code is mrkdwn.code
    assert blocks.clip is mrkdwn.clip
    assert blocks.NEWLINE == mrkdwn.NEWLINE
