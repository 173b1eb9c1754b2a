"""The sandbox's seeded tenant: workflows, users and devices, with fixed identifiers.

Every ``Sandbox`` gets its own fresh copy (``SandboxCatalogue.seeded()``), so a test may add or
change entries without affecting another. Identifiers are fixed so that tests and documentation can name
them; ``lastSeen`` times are fixed too, so "most recently seen wins" is deterministic.

Workflows (NQL id, uuid, dependency, trigger methods, status, notes):

- ``restart_teams``       2e1f828a-7a75-47a5-a948-022d065a13e2  USER_AND_DEVICE  API, MANUAL
  ACTIVE, param ``mode`` (soft|hard), named "Restart Teams"
- ``clear_disk_space``    cd4f5170-93e8-4bbd-98cc-770bf4dd7f09  DEVICE  API, MANUAL, MANUAL_MULTIPLE
- ``reimage_device``      bb9625a1-0c74-44f4-bd8f-62da9c30fbdf  DEVICE  API, MANUAL; param ``reason``
- ``request_software``    3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a  USER_AND_DEVICE  API;
  param ``software``; **pauses**: its executions wait for the trigger
- ``unlock_account``      d8c95666-c515-44b4-935e-bf426eef7c8e  USER  API, MANUAL
- ``license_reclamation`` 2c2ce675-ae80-43e6-8747-3b8af6b05663  NONE  API, SCHEDULER (no target)
- ``legacy_vpn_reset``    a01dc956-b909-4e69-81a3-34b655173442  DEVICE  API, MANUAL; **INACTIVE**
- ``update_drivers``      7d4b85ff-a5b9-4470-b6e2-34c745698dd3  DEVICE  MANUAL, MANUAL_MULTIPLE
  (not API-triggerable)
- ``weekly_health_check`` 193afedb-61a3-48e7-b042-3919f375507d  DEVICE  SCHEDULER (not API-triggerable)

Users: alice, bob, carol, dave and erin ``@example.com``; erin has two records (an old account
and a re-created one), so a lookup by UPN picks the most recently seen. Devices: LAPTOP-ALICE
and DESKTOP-ALICE (alice; the laptop is the more recent), LAPTOP-BOB, LAPTOP-CAROL, LAPTOP-DAVE,
two devices named LAPTOP-42 (a stale record and erin's current laptop) and KIOSK-LOBBY (no owner).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from bot.nexthink.models import TriggerMethod, WorkflowDependency, WorkflowStatus

__all__ = [
    "PAUSING_WORKFLOW_ID",
    "SandboxCatalogue",
    "SandboxDevice",
    "SandboxUser",
    "SandboxWorkflow",
]

#: the seeded workflow whose executions pause at a Wait step and post their question
PAUSING_WORKFLOW_ID = "request_software"

_TRIGGER_KEYS = {
    TriggerMethod.API: "api",
    TriggerMethod.MANUAL: "manual",
    TriggerMethod.MANUAL_MULTIPLE: "manualMultiple",
    TriggerMethod.SCHEDULER: "scheduler",
}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SandboxWorkflow:
    """A workflow as the sandbox knows it; ``to_json()`` is how the API lists it."""

    id: str
    uuid: str
    name: str
    description: str
    dependency: WorkflowDependency
    trigger_methods: frozenset[TriggerMethod]
    status: WorkflowStatus = WorkflowStatus.ACTIVE
    parameters: tuple[str, ...] = ()
    version: int = 1
    last_update_time: datetime = field(default_factory=lambda: _at("2025-03-14T09:26:53"))
    #: executions stop at a Wait step ("API listener") until the trigger endpoint is called
    pauses: bool = False
    #: the question a pausing workflow asks; formatted with requester, user, device, params
    wait_text: str = ""

    @property
    def is_active(self) -> bool:
        return self.status is WorkflowStatus.ACTIVE

    @property
    def api_triggerable(self) -> bool:
        return TriggerMethod.API in self.trigger_methods

    def to_json(self) -> dict[str, Any]:
        """The reference's ``Workflow``, with ``triggerMethods``/``versions`` in the shape public
        clients report (the reference documents them wrongly) and an extra ``parameters`` list."""
        return {
            "id": self.id,
            "uuid": self.uuid,
            "name": self.name,
            "description": self.description,
            "status": self.status.value,
            "lastUpdateTime": _iso(self.last_update_time),
            "triggerMethods": {
                key: method in self.trigger_methods for method, key in _TRIGGER_KEYS.items()
            },
            "versions": [
                {
                    "versionNumber": number,
                    "isActive": number == self.version,
                    "lastUpdateTime": _iso(self.last_update_time),
                }
                for number in range(self.version, 0, -1)
            ],
            "parameters": [{"name": name} for name in self.parameters],
        }


@dataclass(frozen=True)
class SandboxUser:
    upn: str
    sid: str
    uid: str
    name: str
    last_seen: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "upn": self.upn,
            "sid": self.sid,
            "uid": self.uid,
            "name": self.name,
            "lastSeen": _iso(self.last_seen),
        }


@dataclass(frozen=True)
class SandboxDevice:
    name: str
    collector_uid: str
    uid: str
    last_seen: datetime
    #: UPN of the user last seen on the device, if any
    owner: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "collectorUid": self.collector_uid,
            "uid": self.uid,
            "lastSeen": _iso(self.last_seen),
            "owner": self.owner,
        }


_Seen = TypeVar("_Seen", SandboxUser, SandboxDevice)


def _latest(items: Iterable[_Seen]) -> _Seen | None:
    return max(items, key=lambda item: item.last_seen, default=None)


@dataclass
class SandboxCatalogue:
    """The tenant's workflows, users and devices; lookups follow the reference's V2 rules."""

    workflows: list[SandboxWorkflow]
    users: list[SandboxUser]
    devices: list[SandboxDevice]
    #: devices added in bulk (``bot.sandbox.queries.add_fleet``), by lower-case name and by
    #: Collector UUID: found without scanning ``devices``, of which they are also part
    fleet: dict[str, SandboxDevice] = field(default_factory=dict)

    @classmethod
    def seeded(cls) -> SandboxCatalogue:
        return cls(workflows=list(_WORKFLOWS), users=list(_USERS), devices=list(_DEVICES))

    # -- workflows ---------------------------------------------------------------------

    def workflow(self, workflow_id: str) -> SandboxWorkflow | None:
        """By NQL id, with or without the leading ``#`` that Nexthink's examples show."""
        wanted = workflow_id.removeprefix("#")
        return next((w for w in self.workflows if w.id == wanted), None)

    def workflow_by_uuid(self, workflow_uuid: str) -> SandboxWorkflow | None:
        wanted = workflow_uuid.lower()
        return next((w for w in self.workflows if w.uuid == wanted), None)

    # -- users and devices (several matches: the most recently seen wins) ----------------

    def find_user(
        self, *, sid: str | None = None, upn: str | None = None, uid: str | None = None
    ) -> SandboxUser | None:
        """The most recently seen user matching any of the identifiers given."""
        return _latest(
            u
            for u in self.users
            if (sid is not None and u.sid == sid)
            or (upn is not None and u.upn.lower() == upn.lower())
            or (uid is not None and u.uid == uid.lower())
        )

    def find_device(
        self, *, name: str | None = None, collector_uid: str | None = None, uid: str | None = None
    ) -> SandboxDevice | None:
        """The most recently seen device matching any of the identifiers given."""
        for key in (name and name.lower(), collector_uid and collector_uid.lower()):
            if key and key in self.fleet:
                return self.fleet[key]
        return _latest(
            d
            for d in self.devices
            if (name is not None and d.name.lower() == name.lower())
            or (collector_uid is not None and d.collector_uid == collector_uid.lower())
            or (uid is not None and d.uid == uid.lower())
        )

    def device_of(self, user: SandboxUser) -> SandboxDevice | None:
        """The user's most recently seen device (how Nexthink picks one for a user target)."""
        return _latest(
            d for d in self.devices if d.owner is not None and d.owner.lower() == user.upn.lower()
        )

    def owner_of(self, device: SandboxDevice) -> SandboxUser | None:
        return None if device.owner is None else self.find_user(upn=device.owner)

    def to_json(self) -> dict[str, Any]:
        return {
            "workflows": [w.to_json() | {"dependency": w.dependency.value} for w in self.workflows],
            "users": [u.to_json() for u in self.users],
            "devices": [d.to_json() for d in self.devices],
        }


_API = TriggerMethod.API
_MANUAL = TriggerMethod.MANUAL
_MULTIPLE = TriggerMethod.MANUAL_MULTIPLE
_SCHEDULER = TriggerMethod.SCHEDULER

_WORKFLOWS = (
    SandboxWorkflow(
        id="restart_teams",
        uuid="2e1f828a-7a75-47a5-a948-022d065a13e2",
        name="Restart Teams",
        description="Closes and restarts Microsoft Teams for the user; mode=hard also clears its cache.",
        dependency=WorkflowDependency.USER_AND_DEVICE,
        trigger_methods=frozenset({_API, _MANUAL}),
        parameters=("mode",),
        version=3,
    ),
    SandboxWorkflow(
        id="clear_disk_space",
        uuid="cd4f5170-93e8-4bbd-98cc-770bf4dd7f09",
        name="Clear disk space",
        description="Empties temporary folders and the recycle bin on the device.",
        dependency=WorkflowDependency.DEVICE,
        trigger_methods=frozenset({_API, _MANUAL, _MULTIPLE}),
        version=2,
    ),
    SandboxWorkflow(
        id="reimage_device",
        uuid="bb9625a1-0c74-44f4-bd8f-62da9c30fbdf",
        name="Reimage device",
        description="Wipes the device and reinstalls the corporate image.",
        dependency=WorkflowDependency.DEVICE,
        trigger_methods=frozenset({_API, _MANUAL}),
        parameters=("reason",),
    ),
    SandboxWorkflow(
        id=PAUSING_WORKFLOW_ID,
        uuid="3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a",
        name="Request software",
        description="Installs a software package after an approver agrees (waits for a decision).",
        dependency=WorkflowDependency.USER_AND_DEVICE,
        trigger_methods=frozenset({_API}),
        parameters=("software",),
        version=4,
        pauses=True,
        wait_text="{user} asks to install {software} on {device}. Approve?",
    ),
    SandboxWorkflow(
        id="unlock_account",
        uuid="d8c95666-c515-44b4-935e-bf426eef7c8e",
        name="Unlock account",
        description="Unlocks the user's directory account after too many failed sign-ins.",
        dependency=WorkflowDependency.USER,
        trigger_methods=frozenset({_API, _MANUAL}),
    ),
    SandboxWorkflow(
        id="license_reclamation",
        uuid="2c2ce675-ae80-43e6-8747-3b8af6b05663",
        name="License reclamation",
        description="Reclaims software licences unused for 90 days (no target).",
        dependency=WorkflowDependency.NONE,
        trigger_methods=frozenset({_API, _SCHEDULER}),
        last_update_time=_at("2023-12-07T16:26:36"),
    ),
    SandboxWorkflow(
        id="legacy_vpn_reset",
        uuid="a01dc956-b909-4e69-81a3-34b655173442",
        name="Reset VPN (legacy)",
        description="Resets the old VPN client; replaced by the new one, kept inactive.",
        dependency=WorkflowDependency.DEVICE,
        trigger_methods=frozenset({_API, _MANUAL}),
        status=WorkflowStatus.INACTIVE,
        version=5,
    ),
    SandboxWorkflow(
        id="update_drivers",
        uuid="7d4b85ff-a5b9-4470-b6e2-34c745698dd3",
        name="Update drivers",
        description="Installs pending driver updates; run by hand from Nexthink only.",
        dependency=WorkflowDependency.DEVICE,
        trigger_methods=frozenset({_MANUAL, _MULTIPLE}),
    ),
    SandboxWorkflow(
        id="weekly_health_check",
        uuid="193afedb-61a3-48e7-b042-3919f375507d",
        name="Weekly health check",
        description="Collects health data every Monday; scheduled only.",
        dependency=WorkflowDependency.DEVICE,
        trigger_methods=frozenset({_SCHEDULER}),
    ),
)

_SID = "S-1-5-21-1004336348-1177238915-682003330-"

_USERS = (
    SandboxUser(
        "alice@example.com",
        _SID + "1101",
        "4858cb88-8022-407d-aec5-24d6c784e81e",
        "Alice Martin",
        _at("2025-06-02T08:55:00"),
    ),
    SandboxUser(
        "bob@example.com",
        _SID + "1102",
        "c19da90f-6b9f-4e86-9c18-73d58f036e81",
        "Bob Keller",
        _at("2025-06-02T07:40:00"),
    ),
    SandboxUser(
        "carol@example.com",
        _SID + "1103",
        "5c037060-8fda-4e15-b3b7-8b6594a4ed20",
        "Carol Nguyen",
        _at("2025-06-01T16:05:00"),
    ),
    SandboxUser(
        "dave@example.com",
        _SID + "1104",
        "a388f271-5d6d-45a9-84bc-14edbdafdf0b",
        "Dave Okafor",
        _at("2025-05-30T12:00:00"),
    ),
    # erin's account was re-created: two records share the UPN, the newer one wins
    SandboxUser(
        "erin@example.com",
        _SID + "1105",
        "3e1ae2d9-2598-40b5-9dc5-bc85565ddd49",
        "Erin Walsh (old account)",
        _at("2024-11-03T10:00:00"),
    ),
    SandboxUser(
        "erin@example.com",
        _SID + "1205",
        "be57681c-4b12-4774-8ad1-9ec6ba2a4fb2",
        "Erin Walsh",
        _at("2025-06-01T09:30:00"),
    ),
)

_DEVICES = (
    SandboxDevice(
        "LAPTOP-ALICE",
        "9ce3f860-5f13-4475-ab6f-b2e1a2615d35",
        "5ef24db7-bb30-4dfa-a02a-9d2698715dfb",
        _at("2025-06-02T08:50:00"),
        "alice@example.com",
    ),
    SandboxDevice(
        "DESKTOP-ALICE",
        "c61cf08b-7744-4026-a3e2-2fc4078b8831",
        "f136fb51-21de-4694-a1f0-e04f4566d5c4",
        _at("2025-05-20T17:10:00"),
        "alice@example.com",
    ),
    SandboxDevice(
        "LAPTOP-BOB",
        "11148096-8a4a-4958-9977-07c847d66ab5",
        "569204d7-f050-4c9b-87a9-8ce2cdeb92e5",
        _at("2025-06-02T07:35:00"),
        "bob@example.com",
    ),
    SandboxDevice(
        "LAPTOP-CAROL",
        "39c119f2-41e3-49fa-8659-61255f31c47a",
        "3b65794d-2e8b-41ba-b0f5-07b57be083a4",
        _at("2025-06-01T16:00:00"),
        "carol@example.com",
    ),
    SandboxDevice(
        "LAPTOP-DAVE",
        "4ee8871e-c263-4fab-bad9-e4ffa892ef07",
        "e89a06ed-ab27-425b-88a1-406df73ab29b",
        _at("2025-05-30T11:55:00"),
        "dave@example.com",
    ),
    # two devices named LAPTOP-42: a stale record and erin's current laptop (the newer wins)
    SandboxDevice(
        "LAPTOP-42",
        "1ad40c2d-64ab-44b9-88d9-083d55f2c719",
        "91662f91-9566-4b3c-9e5f-a3ebacc5398e",
        _at("2024-12-10T14:00:00"),
        None,
    ),
    SandboxDevice(
        "LAPTOP-42",
        "875b9a44-d753-4d16-90a5-c6c3362eaffd",
        "963aeb51-b5f1-4c78-a738-a2426216ee2f",
        _at("2025-06-01T09:25:00"),
        "erin@example.com",
    ),
    SandboxDevice(
        "KIOSK-LOBBY",
        "00e2a031-92d3-43b9-968c-5fea0a0bb671",
        "c4a9d84b-bb5a-4ef1-963d-8804c42a87bb",
        _at("2025-06-02T06:00:00"),
        None,
    ),
)
