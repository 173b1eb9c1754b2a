"""The pure parts of consent and device choice: the policy key ``consent:`` and the devices
query's rows read into devices."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.devices import read_devices
from bot.policy import Policy, PolicyError

UID = "c61cf08b-7744-4026-a3e2-2fc4078b8831"


def test_consent_is_read_with_its_expiry() -> None:
    """``consent: {required: true, expires_in_minutes: 30}`` becomes the workflow's consent rule."""
    policy = Policy.from_yaml(
        "roles: {all: {members: ['*'], workflows: ['*']}}\n"
        "workflows:\n"
        "  restart_teams: {consent: {required: true, expires_in_minutes: 0.5}}\n"
        "  clear_disk_space: {consent: {required: false}}\n"
    )
    rule = policy.consent_for("RESTART_TEAMS")
    assert rule is not None
    assert rule.expires_in_minutes == 0.5
    assert policy.consent_for("clear_disk_space") is None
    assert policy.consent_for("unlock_account") is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{expires_in_minutes: 0}", "expires_in_minutes"),
        ("{required: maybe}", "required"),
        ("{expire_in_minutes: 5}", "did you mean 'expires_in_minutes'"),
    ],
    ids=["too-short", "not-a-boolean", "misspelt"],
)
def test_a_bad_consent_key_names_itself(body: str, message: str) -> None:
    """A malformed ``consent:`` stops the bot with the key path."""
    with pytest.raises(PolicyError, match=message):
        Policy.from_yaml(f"workflows:\n  restart_teams: {{consent: {body}}}\n")


def test_rows_become_devices_most_recent_first() -> None:
    """Prefixed column names are read by their endings; duplicates keep their latest sighting;
    a row with neither a name nor a usable id is left out."""
    rows = [
        {
            "device.name": "DESKTOP",
            "device.collector.uid": UID.upper(),
            "device.last_seen": "2025-05-20T17:10:00Z",
        },
        {"device.name": "LAPTOP", "device.last_seen": "2025-06-02T08:50:00"},
        {
            "device.name": "DESKTOP",
            "device.collector.uid": UID,
            "device.last_seen": "2025-05-21T09:00:00Z",
        },
        {"device.collector.uid": "not-a-uuid"},
        {"other": 3},
    ]
    devices = read_devices(rows)
    assert [(d.name, d.collector_uid) for d in devices] == [("LAPTOP", None), ("DESKTOP", UID)]
    assert devices[1].last_seen == datetime(2025, 5, 21, 9, 0, tzinfo=UTC)
    assert devices[0].data().to_json() == {"name": "LAPTOP"}
    assert devices[1].data().to_json() == {"collectorUid": UID}
