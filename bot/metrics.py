"""Prometheus metrics, served at ``GET /metrics``. Names are part of the operator's contract."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ACK_SECONDS",
    "CLICKS",
    "COMMANDS",
    "NEXTHINK_CALLS",
    "NEXTHINK_SECONDS",
    "PENDING",
    "TOKEN_REFRESHES",
    "WORK",
]

COMMANDS = Counter(
    "nexthink_bot_commands_total",
    "Slash commands and modal submissions by subcommand and outcome",
    ["command", "outcome"],
)
CLICKS = Counter(
    "nexthink_bot_clicks_total",
    "Button clicks (decisions, approvals) by action and outcome",
    ["action", "outcome"],
)
NEXTHINK_CALLS = Counter(
    "nexthink_bot_nexthink_calls_total",
    "Calls to the Nexthink API by endpoint and HTTP status (or error)",
    ["endpoint", "status"],
)
NEXTHINK_SECONDS = Histogram(
    "nexthink_bot_nexthink_call_seconds",
    "Latency of calls to the Nexthink API",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TOKEN_REFRESHES = Counter(
    "nexthink_bot_token_refreshes_total", "Nexthink OAuth tokens obtained, by result", ["result"]
)
PENDING = Gauge(
    "nexthink_bot_pending", "Waiting executions and approval requests not yet decided", ["kind"]
)
WORK = Gauge(
    "nexthink_bot_work",
    "Work after acknowledgements not finished yet (state=unfinished), and how much of it is held "
    "until the acknowledgements in progress are sent (state=held)",
    ["state"],
)
ACK_SECONDS = Histogram(
    "nexthink_bot_ack_seconds",
    "Time from receiving a Slack request to acknowledging it",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 3),
)
