"""Change tickets and auditors' history, as pure functions: the ``ticket:`` and ``history``
grammar, the policy's ``ticket: {required, pattern, param}`` per workflow and per role, and
``audit: true``."""

from __future__ import annotations

import pytest

from bot.policy import Policy, PolicyError, Principal, TicketError
from bot.targets import DeviceTarget, UserTarget
from handlers.grammar import GrammarError, History, Run, parse

PATTERN = "^(INC|CHG|RITM)[0-9]{7}$"
POLICY = f"""
roles:
  engineers:
    members: ["U0BOB"]
    workflows: ["*"]
    targets: any
    ticket: {{required: true}}
  auditors:
    members: ["U0CAROL"]
    workflows: ["restart_teams"]
    audit: true
  everyone:
    members: ["*"]
    workflows: ["*"]
workflows:
  reimage_device:
    ticket: {{required: true, pattern: "{PATTERN}", param: "ticket"}}
  clear_disk_space:
    ticket: {{pattern: "^CHG[0-9]+$"}}
"""
ALICE = Principal("U0ALICE", "alice@example.com")
BOB = Principal("U0BOB", "bob@example.com")
CAROL = Principal("U0CAROL", "carol@example.com")


@pytest.fixture
def policy() -> Policy:
    return Policy.from_yaml(POLICY)


# -- grammar ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ticket"),
    [
        ("run reimage_device ticket:INC0012345 device:PC-1", "INC0012345"),
        ("run reimage_device TICKET:CHG0000001", "CHG0000001"),
        ('run reimage_device ticket:"CHG 42 b"', "CHG 42 b"),
        ("run reimage_device ticket:'it''s'", "it's"),
        ("run reimage_device", None),
    ],
    ids=["plain", "any-case", "double-quoted", "single-quoted", "none"],
)
def test_run_reads_the_ticket_keyword(text: str, ticket: str | None) -> None:
    command = parse(text)
    assert isinstance(command, Run)
    assert command.ticket == ticket
    assert "ticket" not in command.params_dict


def test_a_quoted_ticket_prefix_is_no_keyword() -> None:
    """`"ticket:x"` as a whole quoted word is not the keyword (it is refused as an extra word)."""
    with pytest.raises(GrammarError, match="Unexpected"):
        parse('run reimage_device "ticket:INC1"')


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("run reimage_device ticket:", "`ticket:` needs a reference"),
        ("run reimage_device ticket:A ticket:B", "The ticket is given twice"),
        ("run reimage_device ticket:" + "X" * 101, "at most 100 are allowed"),
        ("run ticket:INC1", "needs the workflow first"),
        ("run reimage_device tikcet:INC1", "Did you mean `ticket:INC1`?"),
    ],
)
def test_run_refuses_bad_tickets(text: str, says: str) -> None:
    with pytest.raises(GrammarError) as caught:
        parse(text)
    assert says in caught.value.problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("history", History()),
        ("history <@U0BOB|bob>", History(user=UserTarget("mention", "U0BOB"))),
        ("history user:bob@example.com", History(user=UserTarget("upn", "bob@example.com"))),
        ("history bob@example.com", History(user=UserTarget("upn", "bob@example.com"))),
        ("history workflow:reimage_device", History(workflow="reimage_device")),
        ("history ticket:INC0012345", History(ticket="INC0012345")),
        (
            "history <@U0BOB> workflow:#restart_teams ticket:CHG1",
            History(UserTarget("mention", "U0BOB"), "restart_teams", "CHG1"),
        ),
    ],
)
def test_history_reads_an_auditors_filters(text: str, expected: History) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("history device:PC-1", "`history` takes a person"),
        ("history <@U0BOB> <@U0CAROL>", "takes one person"),
        ("history workflow:a workflow:b", "The workflow is given twice"),
        ("history soon", "`history` takes a person"),
    ],
)
def test_history_refuses_what_it_does_not_take(text: str, says: str) -> None:
    with pytest.raises(GrammarError) as caught:
        parse(text)
    assert says in caught.value.problem


def test_the_usage_names_tickets_and_auditors() -> None:
    with pytest.raises(GrammarError) as caught:
        parse("history soon")
    assert "[ticket:REF]" in caught.value.usage
    assert isinstance(parse("run x device:a"), Run)
    assert DeviceTarget("name", "a") in parse("run x device:a").devices  # type: ignore[union-attr]


# -- policy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            'workflows: {w: {ticket: {pattern: "^(INC[0-9"}}}',
            "workflows.w.ticket.pattern: is not a valid regular expression",
        ),
        (
            'roles: {r: {members: ["*"], ticket: {pattern: "(("}}}',
            "roles.r.ticket.pattern: is not a valid regular expression",
        ),
        ("workflows: {w: {ticket: {param: 'no spaces'}}}", "workflows.w.ticket.param: must start"),
        ("workflows: {w: {ticket: {requird: true}}}", "unknown key (did you mean 'required'?)"),
        ("roles: {r: {members: ['*'], audit: 'yes'}}", "roles.r.audit: must be a valid boolean"),
    ],
)
def test_a_malformed_ticket_rule_stops_the_policy_with_its_key_path(text: str, says: str) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_yaml(text)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_workflow_and_role_rules_add_up(policy: Policy) -> None:
    """Bob's role requires a ticket on every run; reimage_device requires its shape and
    parameter for everyone; clear_disk_space only checks the shape of one given."""
    alice = policy.ticket_needs(ALICE, None, "reimage_device")
    assert (alice.required, [p.pattern for p in alice.patterns], alice.param) == (
        True,
        [PATTERN],
        "ticket",
    )
    assert not policy.ticket_needs(ALICE, None, "restart_teams").asked
    bob = policy.ticket_needs(BOB, None, "restart_teams")
    assert bob.required
    assert bob.asked
    assert not bob.patterns
    disk = policy.ticket_needs(ALICE, None, "clear_disk_space")
    assert disk.asked
    assert not disk.required
    assert policy.check_ticket(ALICE, None, "clear_disk_space", None) is None
    assert policy.check_ticket(ALICE, None, "restart_teams", "  ") is None


def test_the_refusals_say_how_to_fix_it(policy: Policy) -> None:
    with pytest.raises(TicketError) as missing:
        policy.check_ticket(ALICE, None, "reimage_device", None)
    assert missing.value.message == (
        "`reimage_device` needs a ticket: add `ticket:INC…` (the incident, change or request it "
        f"is for; it must look like `{PATTERN}`)."
    )
    with pytest.raises(TicketError) as plain:
        policy.check_ticket(BOB, None, "restart_teams", "")
    assert plain.value.message.startswith("`restart_teams` needs a ticket: add `ticket:INC…`")
    with pytest.raises(TicketError) as shape:
        policy.check_ticket(ALICE, None, "reimage_device", "abc")
    assert shape.value.message == f"`ticket:abc` does not look like `{PATTERN}`."
    with pytest.raises(TicketError):
        policy.check_ticket(ALICE, None, "reimage_device", "INC00123456")  # the whole must match
    assert policy.check_ticket(ALICE, None, "reimage_device", " RITM0000042 ") == "RITM0000042"
    assert policy.check_ticket(BOB, None, "restart_teams", "anything-1") == "anything-1"


def test_only_a_role_with_audit_may_read_others_history(policy: Policy) -> None:
    assert policy.may_audit(CAROL, None)
    refused = policy.may_audit(ALICE, None)
    assert not refused
    assert "`audit: true`" in refused.reason
    assert not Policy.default().may_audit(ALICE, None)
