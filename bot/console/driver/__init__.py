"""Send the bot what Slack would send it, signed as Slack signs it.

`SlackDriver` plays the Slack client's part against a running bot: slash commands, button clicks,
modal submissions, options requests, shortcuts and events, built like Slack's own payloads (see
``tests/fixtures/``) with response URLs and trigger IDs issued by a `LocalSlack`. It then does what
Slack does with the bot's acknowledgement: a slash command's ack body is shown to the user, a
``view_submission`` ack closes, updates, pushes or annotates the modal.

In an Enterprise Grid org (a `LocalSlack` with ``enterprise_id``) payloads are org-wide ones when
the app is installed org-wide; ``driver.for_team("T0…")`` acts in another workspace of the org.

Each ``*_payload`` method only builds the payload, for tests that feed the app Socket Mode envelopes
(`socket_envelope`); the methods without the suffix also post it to ``events_url`` (HTTP mode).

Clicks use the blocks of the message or view passed in, as a person clicks what their screen shows:
pass a copy (``dataclasses.replace(message)``) to click a stale rendering after an update.

Where each part lives: `client` (`SlackDriver`: commands, clicks, shortcuts, events), `modals`
(submit, close, suggest), `installs` (``tokens_revoked``, ``app_uninstalled``), `fields` (the user/team/message objects of a payload), `elements`
(finding an element, shaping ``state.values``), `sending` (signing and posting), `socket_mode`.
"""

from bot.console.driver.client import SlackDriver
from bot.console.driver.sending import DriverResponse, Transport
from bot.console.driver.socket_mode import socket_envelope

__all__ = ["DriverResponse", "SlackDriver", "Transport", "socket_envelope"]
