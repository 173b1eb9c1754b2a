"""The policy: loading ``POLICY_FILE``, its errors, and who may run, target, resume and decide."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.policy import ApprovalRule, Decision, ParamError, Policy, PolicyError, Principal

# the example of PRODUCT.md, "The policy file"
PRODUCT_EXAMPLE = """\
roles:
  engineers:
    members: ["U0ENGINEER", "@it-support", "carol@example.com"]
    channels: ["C0SUPPORT"]
    workflows: ["*"]
    targets: any
    resume: true
  everyone:
    members: ["*"]
    workflows: ["restart_teams", "clear_disk_space"]
    targets: self
workflows:
  restart_teams:
    alias: fix-teams
    params:
      mode: {allowed: ["soft", "hard"], default: "soft"}
  reimage_device:
    approval: {channel: "C0APPROVALS", approvers: ["@it-leads"], count: 1}
upn:
  domains: {"example.com": "corp.example.com"}
limits:
  runs_per_user_per_minute: 10
"""

ALICE = Principal("U0ALICE", "alice@corp.example.com")
ENGINEER = Principal("U0ENGINEER", "eng@corp.example.com")
CAROL = Principal("U0CAROL", "carol@corp.example.com")
SUPPORT = Principal("U0SUPPORT", "sup@corp.example.com", frozenset({"it-support"}))
LEAD = Principal("U0LEAD", "lead@corp.example.com", frozenset({"it-leads"}))


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(PRODUCT_EXAMPLE, encoding="utf-8")
    return Policy.load(path)


def _policy(text: str) -> Policy:
    return Policy.from_yaml(text, source="p.yaml")


# -- loading -----------------------------------------------------------------------------------


def test_loads_the_product_example(policy: Policy) -> None:
    """The contract's example loads, with its roles, aliases, approvals, rewrite and limit."""
    assert [r.name for r in policy.roles] == ["engineers", "everyone"]
    assert policy.alias_for("restart_teams") == "fix-teams"
    assert policy.approval_for("reimage_device") == ApprovalRule(
        "C0APPROVALS", ("@it-leads",), 1, 1440
    )
    assert policy.rewrite_upn("bob@example.com") == "bob@corp.example.com"
    assert policy.runs_per_user_per_minute == 10
    assert not policy.is_default


def test_unknown_top_level_keys_are_allowed_and_named() -> None:
    """More top-level keys may be added to the contract: they are kept aside, not an error."""
    loaded = _policy("roles: {}\naudit: {keep_days: 30}\nzz: 1\n")
    assert loaded.unknown_keys == ("audit", "zz")
    assert "ignored keys: audit, zz" in loaded.summary()


def test_empty_sections_are_empty() -> None:
    """``roles:`` or ``workflows:`` with nothing under them mean none, and a bare workflow id is fine."""
    loaded = _policy("roles:\nworkflows:\n  reimage_device:\nupn:\nlimits:\n")
    assert loaded.roles == ()
    assert loaded.approval_for("reimage_device") is None
    assert loaded.runs_per_user_per_minute == 10


def test_yaml_merge_keys_work() -> None:
    """YAML anchors and merge keys can share settings between roles."""
    loaded = _policy(
        "base: &base {workflows: ['*'], targets: any}\n"
        "roles:\n  a: {<<: *base, members: ['*'], targets: self}\n"
    )
    assert loaded.roles[0].targets == "self"
    assert loaded.roles[0].workflows == ("*",)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param(
            "roles: {a: {members: [bob]}}",
            'roles.a.members[0]: must be a Slack user ID (U…/W…), an @usergroup handle, a UPN or "*"',
            id="bad-member",
        ),
        pytest.param("roles: {a: {members: []}}", "roles.a.members: ", id="no-members"),
        pytest.param(
            "roles: {a: {workflows: ['*']}}", "roles.a.members: is required", id="missing"
        ),
        pytest.param(
            "roles: {engineers: {members: ['*'], targets: every}}",
            "roles.engineers.targets: must be 'self' or 'any', got 'every'",
            id="bad-targets",
        ),
        pytest.param(
            "roles: {a: {members: ['*'], target: any}}",
            "roles.a.target: unknown key (did you mean 'targets'?)",
            id="typo-key",
        ),
        pytest.param(
            "roles: {a: {members: ['*'], resume: 'yes'}}",
            "roles.a.resume: must be a valid boolean, got 'yes'",
            id="string-bool",
        ),
        pytest.param(
            "roles: {a: {members: ['*'], channels: ['#general']}}",
            "roles.a.channels[0]: must be a channel ID",
            id="channel-name",
        ),
        pytest.param(
            "roles: {a: {members: ['*'], channels: []}}", "roles.a.channels: ", id="no-channels"
        ),
        pytest.param(
            "roles: {a: {members: ['*'], workflows: ['a b']}}",
            "roles.a.workflows[0]: ",
            id="glob-space",
        ),
        pytest.param("roles: [a]", "roles: must be a valid dictionary", id="roles-list"),
        pytest.param(
            "workflows: {a: {alias: 'fix teams'}}",
            "workflows.a.alias: must be 1-64",
            id="alias-space",
        ),
        pytest.param(
            "workflows: {a: {alias: x}, b: {alias: X}}",
            "workflows.b.alias: 'X' is already the alias of workflows.a",
            id="duplicate-alias",
        ),
        pytest.param(
            "workflows: {a: {alias: B}, b: {}}",
            "workflows.a.alias: 'B' is the id of another workflow",
            id="alias-is-other-id",
        ),
        pytest.param(
            "workflows: {a: {params: {m: {allowed: [yes, no]}}}}",
            "workflows.a.params.m.allowed[0]: YAML reads yes/no",
            id="yaml-bool-value",
        ),
        pytest.param(
            "workflows: {a: {params: {m: {allowed: [a], default: b}}}}",
            "workflows.a.params.m: the default 'b' is not one of the allowed values",
            id="default-not-allowed",
        ),
        pytest.param(
            "workflows: {a: {params: {m: {pattern: '('}}}}",
            "workflows.a.params.m.pattern: is not a valid regular expression",
            id="bad-regex",
        ),
        pytest.param(
            "workflows: {a: {params: {m: {default: ''}}}}",
            "workflows.a.params.m.default: must not be empty",
            id="empty-default",
        ),
        pytest.param(
            "workflows: {a: {params: {'1m': {}}}}",
            "workflows.a.params.1m (the key): must start with a letter",
            id="bad-param-name",
        ),
        pytest.param(
            "workflows: {a: {approval: {approvers: [U0A, U0B], count: 3}}}",
            "workflows.a.approval: count is 3 but only 2 approver(s) are named",
            id="impossible-count",
        ),
        pytest.param(
            "workflows: {a: {approval: {expires_in_minutes: 0}}}",
            "workflows.a.approval.expires_in_minutes: must be greater than or equal to 0.05, got 0",
            id="bad-expiry",
        ),
        pytest.param(
            "upn: {domains: {example.com: 'not a domain'}}",
            "upn.domains.example.com: must be a domain",
            id="bad-domain",
        ),
        pytest.param(
            "limits: {runs_per_user_per_minute: 0}",
            "limits.runs_per_user_per_minute: must be greater than or equal to 1, got 0",
            id="bad-limit",
        ),
        pytest.param(
            "limits: {runs_per_user_per_minute: '10'}",
            "limits.runs_per_user_per_minute: must be a valid integer, got '10'",
            id="string-limit",
        ),
        pytest.param(
            "roles:\n  a: {members: ['*']}\n  a: {members: ['*']}\n",
            "YAML error at line 3, column 3: duplicate key 'a' (first at line 2)",
            id="duplicate-key",
        ),
        pytest.param("roles: [\n", "YAML error at line 2, column 1", id="yaml-syntax"),
        pytest.param("", "is empty", id="empty-file"),
        pytest.param("- a\n- b\n", "(top level): must be a mapping", id="top-level-list"),
    ],
)
def test_bad_files_are_refused_in_one_line(text: str, says: str) -> None:
    """A bad policy is one line naming the file, the key path and the problem."""
    with pytest.raises(PolicyError) as caught:
        _policy(text)
    message = str(caught.value)
    assert message.startswith("policy file p.yaml: ")
    assert says in message
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is named in the error."""
    with pytest.raises(PolicyError, match=r"policy file .*nope\.yaml: no such file"):
        Policy.load(tmp_path / "nope.yaml")


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    """A directory or a file that is not UTF-8 is refused with a clear line."""
    with pytest.raises(PolicyError, match="cannot be read"):
        Policy.load(tmp_path)
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"roles: {}\n# caf\xe9\n")
    with pytest.raises(PolicyError, match=r"is not UTF-8 \(byte 15\)"):
        Policy.load(path)


# -- running -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "channel", "workflow", "allowed", "says"),
    [
        pytest.param(ALICE, "C1", "restart_teams", True, "`everyone`", id="everyone-listed"),
        pytest.param(
            ALICE, "C1", "reimage_device", False, "do not include", id="everyone-unlisted"
        ),
        pytest.param(
            ENGINEER, "C0SUPPORT", "reimage_device", True, "`engineers`", id="engineer-in-channel"
        ),
        pytest.param(
            ENGINEER, "C1", "reimage_device", False, "only in <#C0SUPPORT>", id="engineer-elsewhere"
        ),
        pytest.param(
            ENGINEER,
            None,
            "reimage_device",
            False,
            "only in <#C0SUPPORT>",
            id="engineer-no-channel",
        ),
        pytest.param(SUPPORT, "C0SUPPORT", "anything", True, "`engineers`", id="group-member"),
        pytest.param(
            CAROL, "C0SUPPORT", "anything", True, "`engineers`", id="upn-member-rewritten"
        ),
        pytest.param(
            Principal("U0X", "CAROL@Example.COM"), "C0SUPPORT", "x", True, "", id="upn-any-case"
        ),
        pytest.param(ALICE, "C1", "fix-teams", True, "", id="alias-matches-glob"),
        pytest.param(ALICE, "C1", "RESTART_TEAMS", True, "", id="id-any-case"),
    ],
)
def test_may_run(
    policy: Policy, who: Principal, channel: str | None, workflow: str, allowed: bool, says: str
) -> None:
    """Roles grant workflows by glob over ids and aliases, by member and by channel."""
    decision = policy.may_run(who, channel, workflow)
    assert decision.allowed is allowed
    assert bool(decision) is allowed
    assert says in decision.reason


def test_alias_glob_matches_the_workflow() -> None:
    """A role listing only an alias grants the workflow it names."""
    loaded = _policy(
        "roles: {r: {members: ['*'], workflows: ['fix-*']}}\nworkflows: {restart_teams: {alias: fix-teams}}"
    )
    assert loaded.may_run(ALICE, None, "restart_teams").allowed
    assert not loaded.may_run(ALICE, None, "other").allowed


def test_no_role_means_nothing() -> None:
    """With a policy file, someone in no role may run nothing and is told why."""
    loaded = _policy("roles: {eng: {members: [U0ENGINEER], workflows: ['*'], targets: any}}")
    decision = loaded.may_run(ALICE, "C1", "restart_teams")
    assert decision == Decision(False, decision.reason)
    assert "no role" in decision.reason
    assert loaded.visible_workflows(ALICE, "C1", ["a", "b"]) == []


def test_visible_workflows_keeps_order(policy: Policy) -> None:
    """``visible_workflows`` filters to what may be run, keeping the catalogue's order."""
    ids = ["clear_disk_space", "reimage_device", "restart_teams"]
    assert policy.visible_workflows(ALICE, "C1", ids) == ["clear_disk_space", "restart_teams"]
    assert policy.visible_workflows(ENGINEER, "C0SUPPORT", ids) == ids


def test_resolve_workflow(policy: Policy) -> None:
    """An alias in any case resolves to its NQL id; other names come back unchanged."""
    assert policy.resolve_workflow("FIX-Teams") == "restart_teams"
    assert policy.resolve_workflow("restart_teams") == "restart_teams"
    assert policy.resolve_workflow("unknown") == "unknown"
    assert policy.alias_for("unknown") is None


def test_targets(policy: Policy) -> None:
    """``targets: self`` refuses devices and other people and says why; ``any`` allows them."""
    assert policy.may_target(ALICE, "C1", "restart_teams").allowed
    refused = policy.may_target(ALICE, "C1", "restart_teams", devices=1, other_users=2)
    assert not refused.allowed
    assert "only run `restart_teams` on yourself" in refused.reason
    assert "devices or other people" in refused.reason
    assert "Nexthink picks your most recent device" in refused.reason
    assert not policy.may_target_others(ALICE, "C1", "restart_teams")
    assert policy.may_target_others(ENGINEER, "C0SUPPORT", "restart_teams")
    assert policy.may_target(ENGINEER, "C0SUPPORT", "restart_teams", devices=3).allowed
    assert not policy.may_target_others(ENGINEER, "C1", "restart_teams")


def test_is_self(policy: Policy) -> None:
    """A target is the principal by Slack id or by UPN, before or after the domain rewrite."""
    assert policy.is_self(ALICE, user_id="U0ALICE")
    assert policy.is_self(ALICE, upn="Alice@example.com")
    assert not policy.is_self(ALICE, upn="bob@example.com", user_id="U0BOB")


def test_run_visible() -> None:
    """``visible: true`` posts a role's runs in the channel; otherwise they are ephemeral."""
    loaded = _policy(
        "roles:\n  a: {members: ['*'], workflows: [x], visible: true}\n  b: {members: ['*'], workflows: [y]}\n"
    )
    assert loaded.run_visible(ALICE, "C1", "x")
    assert not loaded.run_visible(ALICE, "C1", "y")


# -- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param({}, {"mode": "soft"}, id="default"),
        pytest.param({"mode": "hard"}, {"mode": "hard"}, id="allowed"),
        pytest.param({"mode": "HARD"}, {"mode": "hard"}, id="allowed-any-case"),
        pytest.param({"mode": ""}, {"mode": "soft"}, id="empty-is-absent"),
    ],
)
def test_check_params(policy: Policy, given: dict[str, str], expected: dict[str, str]) -> None:
    """Declared parameters get their defaults and their configured spelling."""
    assert policy.check_params("restart_teams", given) == expected


@pytest.mark.parametrize(
    ("given", "says", "name"),
    [
        pytest.param(
            {"mode": "medium"},
            "`mode` must be one of `soft`, `hard`, not `medium`.",
            "mode",
            id="not-allowed",
        ),
        pytest.param(
            {"foo": "1"},
            "`restart_teams` takes no parameter `foo`; its parameters: `mode`.",
            "foo",
            id="undeclared",
        ),
    ],
)
def test_check_params_refuses(policy: Policy, given: dict[str, str], says: str, name: str) -> None:
    """A bad parameter is refused, naming it and what is allowed."""
    with pytest.raises(ParamError) as caught:
        policy.check_params("restart_teams", given)
    assert caught.value.message == says
    assert caught.value.name == name


def test_required_and_pattern() -> None:
    """``required`` and ``pattern`` (full match) are enforced; undeclared workflows pass through."""
    loaded = _policy("workflows: {w: {params: {ticket: {required: true, pattern: 'INC[0-9]+'}}}}")
    with pytest.raises(ParamError, match="needs the parameter `ticket`"):
        loaded.check_params("w", {})
    with pytest.raises(ParamError, match="must match `INC\\[0-9\\]\\+`"):
        loaded.check_params("w", {"ticket": "INC12x"})
    assert loaded.check_params("w", {"ticket": "INC12"}) == {"ticket": "INC12"}
    assert loaded.check_params("other", {"any": "thing"}) == {"any": "thing"}
    assert set(loaded.param_specs("w")) == {"ticket"}
    assert loaded.param_specs("other") == {}


def test_numbers_in_yaml_become_strings() -> None:
    """Whole numbers in ``allowed`` and ``default`` are read as the strings Nexthink expects."""
    loaded = _policy("workflows: {w: {params: {days: {allowed: [7, 30], default: 7}}}}")
    assert loaded.check_params("w", {}) == {"days": "7"}


# -- resume and decisions ----------------------------------------------------------------------


def test_may_resume(policy: Policy) -> None:
    """Only a role with ``resume: true`` may resume, in its channels."""
    assert policy.may_resume(ENGINEER, "C0SUPPORT").allowed
    elsewhere = policy.may_resume(ENGINEER, "C1")
    assert not elsewhere.allowed
    assert "only in <#C0SUPPORT>" in elsewhere.reason
    assert not policy.may_resume(ALICE, "C0SUPPORT").allowed


@pytest.mark.parametrize(
    ("who", "approvers", "requester_upn", "requester_id", "allowed", "says"),
    [
        pytest.param(LEAD, ["@it-leads"], None, None, True, "approvers", id="group-approver"),
        pytest.param(
            ALICE, ["@it-leads"], None, None, False, "Only @it-leads may decide", id="not-approver"
        ),
        pytest.param(ALICE, ["U0BOB"], None, None, False, "Only <@U0BOB>", id="names-approvers"),
        pytest.param(
            ALICE, ["alice@example.com"], None, None, True, "", id="approver-upn-before-rewrite"
        ),
        pytest.param(ALICE, None, "alice@example.com", None, False, "someone else", id="own-upn"),
        pytest.param(ALICE, ["*"], None, "U0ALICE", False, "someone else", id="own-id"),
        pytest.param(ALICE, None, "bob@example.com", "U0BOB", True, "", id="anyone-in-a-role"),
    ],
)
def test_may_decide(
    policy: Policy,
    who: Principal,
    approvers: list[str] | None,
    requester_upn: str | None,
    requester_id: str | None,
    allowed: bool,
    says: str,
) -> None:
    """The requester never decides their own; approvers limit who may; otherwise anyone may."""
    decision = policy.may_decide(
        who, approvers=approvers, requester_upn=requester_upn, requester_id=requester_id
    )
    assert decision.allowed is allowed
    assert says in decision.reason


def test_decide_without_role() -> None:
    """Someone in no role may decide only a wait that names them as approver."""
    loaded = _policy("roles: {eng: {members: [U0ENGINEER], workflows: ['*']}}")
    assert not loaded.may_decide(ALICE, approvers=None).allowed
    assert loaded.may_decide(ALICE, approvers=["U0ALICE"]).allowed
    assert loaded.may_decide(ENGINEER, approvers=None).allowed


def test_long_approver_lists_are_shortened(policy: Policy) -> None:
    """A refusal names at most five approvers."""
    approvers = [f"U0{i:03d}" for i in range(8)]
    reason = policy.may_decide(ALICE, approvers=approvers).reason
    assert reason.endswith("and 3 more may decide this.")


# -- UPNs, groups, summary ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "upn"),
    [
        pytest.param("bob@example.com", "bob@corp.example.com", id="rewritten"),
        pytest.param("Bob@EXAMPLE.com", "Bob@corp.example.com", id="domain-any-case"),
        pytest.param("bob@other.com", "bob@other.com", id="other-domain"),
        pytest.param("bob@sub.example.com", "bob@sub.example.com", id="subdomain-untouched"),
        pytest.param("not-an-email", "not-an-email", id="no-at"),
    ],
)
def test_rewrite_upn(policy: Policy, email: str, upn: str) -> None:
    """``upn.domains`` replaces the email's domain, matched in any case."""
    assert policy.rewrite_upn(email) == upn


def test_emails_for_upn(policy: Policy) -> None:
    """The reverse of the rewrite finds the Slack email of a rewritten UPN."""
    assert policy.emails_for_upn("bob@corp.example.com") == ["bob@example.com"]
    assert policy.emails_for_upn("bob@other.com") == []


def test_uses_groups(policy: Policy) -> None:
    """``uses_groups`` says whether principals need their user groups looked up."""
    assert policy.uses_groups
    assert not Policy.default().uses_groups
    assert not _policy("roles: {a: {members: ['*']}}").uses_groups


def test_summary_is_one_short_line(policy: Policy) -> None:
    """The summary names the file, the roles and the counts, in one line."""
    summary = policy.summary()
    assert "\n" not in summary
    assert "2 roles: engineers (3 members), everyone (1 member)" in summary
    assert "2 workflows configured (1 alias, 1 with approval)" in summary
    assert "10 runs per user per minute" in summary


# -- the default policy ------------------------------------------------------------------------


def test_default_policy() -> None:
    """Without a file, everyone runs any workflow on themselves only, and nobody resumes."""
    default = Policy.default()
    assert default.is_default
    assert default.may_run(ALICE, None, "anything").allowed
    assert not default.may_target_others(ALICE, None, "anything")
    assert not default.may_target(ALICE, "C1", "anything", other_users=1).allowed
    assert not default.may_resume(ALICE, "C1").allowed
    assert default.may_decide(ALICE, approvers=None).allowed
    assert default.rewrite_upn("a@example.com") == "a@example.com"
    assert default.runs_per_user_per_minute == 10
    assert default.check_params("w", {"a": "1"}) == {"a": "1"}
    assert default.approval_for("w") is None
    assert not default.run_visible(ALICE, "C1", "w")
    assert default.summary().startswith("default policy")


_IDS = st.from_regex(r"\A[a-z_][a-z0-9_]{0,30}\Z")
_USERS = st.from_regex(r"\AU[A-Z0-9]{4,10}\Z")


@given(user=_USERS, workflow=_IDS, channel=st.none() | st.from_regex(r"\AC[A-Z0-9]{4,8}\Z"))
def test_default_policy_property(user: str, workflow: str, channel: str | None) -> None:
    """For anyone, anywhere, the default policy allows running on oneself and nothing more."""
    default = Policy.default()
    who = Principal(user, f"{user.lower()}@example.com")
    assert default.may_run(who, channel, workflow).allowed
    assert not default.may_target_others(who, channel, workflow)
    assert not default.may_resume(who, channel).allowed


@given(user=_USERS.filter(lambda u: u != "U0ENGINEER"), workflow=_IDS)
def test_outsiders_may_run_nothing_property(user: str, workflow: str) -> None:
    """With a file, a principal in no role may run no workflow, in no channel."""
    loaded = _policy("roles: {eng: {members: [U0ENGINEER], workflows: ['*'], targets: any}}")
    who = Principal(user, "x@example.com", frozenset({"it"}))
    assert not loaded.may_run(who, "C0SUPPORT", workflow).allowed
    assert not loaded.may_resume(who, "C0SUPPORT").allowed
