"""The ``/nexthink`` command grammar: tokenizer, Slack markup, subcommands and their errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.nexthink.models import is_upn
from handlers.grammar import (
    HELP,
    MAX_TARGETS,
    SUBCOMMANDS,
    Command,
    DeviceTarget,
    GrammarError,
    Help,
    History,
    Info,
    ListWorkflows,
    OpenModal,
    Resume,
    Run,
    UserTarget,
    parse,
    usage,
)

WF = "3a77cbbe-04fe-4f0b-adf6-9191a29d7e3a"
EX = "fecab46b-ee58-b8bc-b61e-912a2dc2bcbc"


def _error(text: str) -> GrammarError:
    with pytest.raises(GrammarError) as caught:
        parse(text)
    return caught.value


# -- what parses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", OpenModal(), id="empty"),
        pytest.param("  \u00a0 \n", OpenModal(), id="only-spaces"),
        pytest.param("help", Help(), id="help"),
        pytest.param("HeLp RUN", Help("run"), id="help-topic-any-case"),
        pytest.param("list", ListWorkflows(), id="list"),
        pytest.param("list teams", ListWorkflows("teams"), id="list-filter"),
        pytest.param("list disk space", ListWorkflows("disk space"), id="list-filter-words"),
        pytest.param('list ""', ListWorkflows(), id="list-empty-filter"),
        pytest.param("info restart_teams", Info("restart_teams"), id="info"),
        pytest.param("info #restart_teams", Info("restart_teams"), id="info-nql-hash"),
        pytest.param("info <#C012|restart_teams>", Info("restart_teams"), id="info-channel-link"),
        pytest.param("history", History(), id="history"),
        pytest.param("HISTORY", History(), id="history-upper"),
        pytest.param("run restart_teams", Run("restart_teams"), id="run-bare"),
        pytest.param("Run fix-teams", Run("fix-teams"), id="run-alias"),
        pytest.param(
            "run wf device:LAPTOP-42",
            Run("wf", devices=(DeviceTarget("name", "LAPTOP-42"),)),
            id="device-name",
        ),
        pytest.param(
            f"run wf DEVICE:{WF.upper()}",
            Run("wf", devices=(DeviceTarget("collector_uid", WF),)),
            id="device-uuid-lowered",
        ),
        pytest.param(
            'run wf device:"Alice\'s MacBook"',
            Run("wf", devices=(DeviceTarget("name", "Alice's MacBook"),)),
            id="device-quoted",
        ),
        pytest.param(
            "run wf device:<http://laptop-42.corp.local|laptop-42.corp.local>",
            Run("wf", devices=(DeviceTarget("name", "laptop-42.corp.local"),)),
            id="device-autolinked",
        ),
        pytest.param(
            "run wf user:<@U0123ABC|alice> user:<@W0456>",
            Run("wf", users=(UserTarget("mention", "U0123ABC"), UserTarget("mention", "W0456"))),
            id="user-mentions",
        ),
        pytest.param(
            "run wf <@U0123ABC|alice>",
            Run("wf", users=(UserTarget("mention", "U0123ABC"),)),
            id="bare-mention",
        ),
        pytest.param(
            "run wf user:<mailto:bob@example.com|bob@example.com>",
            Run("wf", users=(UserTarget("upn", "bob@example.com"),)),
            id="user-mailto",
        ),
        pytest.param(
            "run wf user:bob@example.com",
            Run("wf", users=(UserTarget("upn", "bob@example.com"),)),
            id="user-upn",
        ),
        pytest.param(
            "run wf user:S-1-5-21-1004336348-1177238915-682003330-512",
            Run("wf", users=(UserTarget("sid", "S-1-5-21-1004336348-1177238915-682003330-512"),)),
            id="user-sid",
        ),
        pytest.param(
            "run wf user:s-1-5-21-1",
            Run("wf", users=(UserTarget("sid", "S-1-5-21-1"),)),
            id="user-sid-lower",
        ),
        pytest.param(
            "run wf device:a device:a user:<@U01> <@U01|x>",
            Run("wf", users=(UserTarget("mention", "U01"),), devices=(DeviceTarget("name", "a"),)),
            id="duplicates-once",
        ),
        pytest.param(
            'run wf note="disk full" mode=soft',
            Run("wf", params=(("note", "disk full"), ("mode", "soft"))),
            id="params-quoted",
        ),
        pytest.param(
            "run wf note='disk full'",
            Run("wf", params=(("note", "disk full"),)),
            id="single-quotes",
        ),
        pytest.param(
            "run wf note=“disk full”",
            Run("wf", params=(("note", "disk full"),)),
            id="smart-double-quotes",
        ),
        pytest.param(
            "run wf note=”disk full”",
            Run("wf", params=(("note", "disk full"),)),
            id="smart-closing-quotes-both-ends",
        ),
        pytest.param(
            "run wf note=‘disk full’",
            Run("wf", params=(("note", "disk full"),)),
            id="smart-single-quotes",
        ),
        pytest.param(
            "run wf note='it''s'",
            Run("wf", params=(("note", "it's"),)),
            id="doubled-quote-is-literal",
        ),
        pytest.param(
            r'run wf note="say \"hi\" \\o/"',
            Run("wf", params=(("note", 'say "hi" \\o/'),)),
            id="backslash-escapes",
        ),
        pytest.param(
            r'run wf path="C:\temp\new"',
            Run("wf", params=(("path", r"C:\temp\new"),)),
            id="other-backslashes-kept",
        ),
        pytest.param(
            r"run wf path=C:\temp",
            Run("wf", params=(("path", r"C:\temp"),)),
            id="backslash-outside-quotes",
        ),
        pytest.param(
            "run wf note=don't",
            Run("wf", params=(("note", "don't"),)),
            id="apostrophe-inside-word",
        ),
        pytest.param(
            'run wf "note"="a b"',
            Run("wf", params=(("note", "a b"),)),
            id="quoted-key",
        ),
        pytest.param(
            'run wf note="a=b"',
            Run("wf", params=(("note", "a=b"),)),
            id="quoted-equals-in-value",
        ),
        pytest.param(
            "run wf expr=a=b",
            Run("wf", params=(("expr", "a=b"),)),
            id="first-equals-splits",
        ),
        pytest.param(
            "run wf q=a&amp;b&lt;c&gt;",
            Run("wf", params=(("q", "a&b<c>"),)),
            id="entities-decoded",
        ),
        pytest.param(
            "run wf q=&amp;lt;",
            Run("wf", params=(("q", "&lt;"),)),
            id="entities-decoded-once",
        ),
        pytest.param(
            'run wf note="see <http://example.com|example.com>"',
            Run("wf", params=(("note", "see example.com"),)),
            id="link-in-value-is-label",
        ),
        pytest.param(
            "run wf mail=<mailto:a@b.co|a@b.co>",
            Run("wf", params=(("mail", "a@b.co"),)),
            id="mailto-in-value",
        ),
        pytest.param(
            "run\u00a0wf\u00a0mode=soft",
            Run("wf", params=(("mode", "soft"),)),
            id="nbsp-separates",
        ),
        pytest.param(
            "run wf\u200b mode=\u200bsoft",
            Run("wf", params=(("mode", "soft"),)),
            id="zero-width-dropped",
        ),
        pytest.param(
            "run\twf\nmode=soft",
            Run("wf", params=(("mode", "soft"),)),
            id="tabs-and-newlines",
        ),
        pytest.param(
            f"resume {WF} {EX}",
            Resume(WF, EX),
            id="resume",
        ),
        pytest.param(
            f"RESUME {WF.upper()} {EX} decision=approved",
            Resume(WF, EX, (("decision", "approved"),)),
            id="resume-params",
        ),
    ],
)
def test_parses(text: str, expected: Command) -> None:
    """Each form of the command text becomes the command it means."""
    assert parse(text) == expected


def test_run_keeps_order_of_targets_and_params() -> None:
    """Targets and parameters come out in the order typed, and ``params_dict`` maps them."""
    command = parse("run wf b=2 device:y a=1 device:x user:x@y.co")
    assert isinstance(command, Run)
    assert [d.value for d in command.devices] == ["y", "x"]
    assert command.params == (("b", "2"), ("a", "1"))
    assert command.params_dict == {"b": "2", "a": "1"}
    assert command.has_targets


def test_commands_are_frozen_and_hashable() -> None:
    """Commands can be compared, hashed and not changed by accident."""
    command = parse("run wf device:x mode=soft")
    assert hash(command) == hash(parse("run wf device:x mode=soft"))
    with pytest.raises(AttributeError):
        command.workflow = "other"  # type: ignore[misc,union-attr]


# -- what is refused, and how it says so -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says", "sub"),
    [
        pytest.param(
            "rnu wf", ["Unknown subcommand `rnu`", "Did you mean `run`?"], None, id="typo"
        ),
        pytest.param(
            "restart_teams", ["`restart_teams`", "write `run restart_teams`"], None, id="bare-name"
        ),
        pytest.param(
            'run wf note="disk', ["quote", '`"disk`', "never closed"], "run", id="unterminated"
        ),
        pytest.param("run wf note='x", ["never closed"], "run", id="unterminated-single"),
        pytest.param("run wf note=“x", ["never closed"], "run", id="unterminated-smart"),
        pytest.param("run", ["`run` needs a workflow"], "run", id="run-no-workflow"),
        pytest.param(
            "run user:a@b.co", ["workflow first", "`user:a@b.co`"], "run", id="target-first"
        ),
        pytest.param("run mode=x", ["workflow first"], "run", id="param-first"),
        pytest.param(
            "run <@U01|bob>", ["`@bob` is not a workflow"], "run", id="mention-as-workflow"
        ),
        pytest.param('run "a b"', ["`a b`", "spaces"], "run", id="workflow-with-space"),
        pytest.param("run #", ["needs a workflow id"], "run", id="workflow-only-hash"),
        pytest.param("run " + "w" * 256, ["256 characters"], "run", id="workflow-too-long"),
        pytest.param("run wf mode=", ["`mode` has no value", "non-empty"], "run", id="empty-value"),
        pytest.param('run wf mode=""', ["`mode` has no value"], "run", id="empty-quoted-value"),
        pytest.param("run wf =x", ["no parameter name"], "run", id="no-key"),
        pytest.param("run wf 1x=2", ["`1x` is not a valid parameter name"], "run", id="bad-key"),
        pytest.param(
            "run wf " + "k" * 65 + "=1", ["not a valid parameter name"], "run", id="long-key"
        ),
        pytest.param("run wf a=1 a=2", ["`a` is given twice"], "run", id="duplicate-key"),
        pytest.param(
            "run wf a=" + "x" * 1001, ["1,001 characters", "1,000"], "run", id="long-value"
        ),
        pytest.param("run wf foo bar", ["Unexpected `foo`, `bar`"], "run", id="extra-words"),
        pytest.param(
            "run wf alice@example.com",
            ["Did you mean `user:alice@example.com`?"],
            "run",
            id="hint-upn",
        ),
        pytest.param(f"run wf {WF}", [f"Did you mean `device:{WF}`?"], "run", id="hint-uuid"),
        pytest.param("run wf devise:x", ["Did you mean `device:x`?"], "run", id="hint-prefix"),
        pytest.param(
            'run wf "user:a@b.co"', ["Unexpected `user:a@b.co`"], "run", id="quoted-prefix"
        ),
        pytest.param("run wf user:", ["`user:` needs a person"], "run", id="user-empty"),
        pytest.param("run wf user:bob", ["`user:bob` names no user"], "run", id="user-bad"),
        pytest.param(
            "run wf user:@bob", ["`@bob` is plain text, not a mention"], "run", id="user-plain-at"
        ),
        pytest.param(
            "run wf user:<#C01|general>", ["`user:#general` is a channel"], "run", id="user-channel"
        ),
        pytest.param(
            "run wf <#C01|general>", ["`#general` is a channel"], "run", id="bare-channel"
        ),
        pytest.param(
            "run wf user:<!subteam^S01|@it>", ["is a group", "one by one"], "run", id="user-group"
        ),
        pytest.param("run wf <!here>", ["`@here` is a group"], "run", id="here"),
        pytest.param(
            "run wf user:<@bob>", ["not a mention of a Slack user"], "run", id="bad-mention"
        ),
        pytest.param("run wf device:", ["`device:` needs a device name"], "run", id="device-empty"),
        pytest.param(
            "run wf device:<@U01|bob>",
            ["`device:@bob` is not a device", "`user:`"],
            "run",
            id="device-person",
        ),
        pytest.param("run wf device:<#C01|x>", ["is not a device"], "run", id="device-channel"),
        pytest.param(
            "run wf device:" + "d" * 256, ["256 characters", "255"], "run", id="device-long"
        ),
        pytest.param('run wf device:"a\x07b"', ["control character"], "run", id="device-control"),
        pytest.param("run wf user:" + "u" * 1001, ["1,001 characters"], "run", id="user-long"),
        pytest.param("info", ["`info` needs a workflow"], "info", id="info-empty"),
        pytest.param("info a b", ["Unexpected `b`", "one workflow"], "info", id="info-extra"),
        pytest.param(
            "resume", ["workflow UUID and then the execution UUID"], "resume", id="resume-empty"
        ),
        pytest.param(f"resume {WF}", ["execution UUID"], "resume", id="resume-one"),
        pytest.param(
            f"resume x {EX}", ["`x` is not a workflow UUID"], "resume", id="resume-bad-wf"
        ),
        pytest.param(
            f"resume {WF} y", ["`y` is not an execution UUID"], "resume", id="resume-bad-ex"
        ),
        pytest.param(f"resume {WF} {EX} z", ["Unexpected `z`"], "resume", id="resume-extra"),
        pytest.param(
            f"resume {WF} {EX} d=", ["`d` has no value"], "resume", id="resume-empty-value"
        ),
        pytest.param(
            f"resume {WF} {EX} device:x", ["takes no targets"], "resume", id="resume-target"
        ),
        pytest.param(
            f"resume {WF} {EX} <@U01>", ["takes no targets"], "resume", id="resume-mention"
        ),
        pytest.param("history me", ["takes a person", "not `me`"], "history", id="history-extra"),
        pytest.param("help foo", ["no help on `foo`"], "help", id="help-unknown"),
        pytest.param("help lst", ["Did you mean `list`?"], "help", id="help-typo"),
        pytest.param("help run list", ["Unexpected `list`"], "help", id="help-extra"),
    ],
)
def test_refuses(text: str, says: list[str], sub: str | None) -> None:
    """A mistake is named, quoting the offending word, with the usage of that subcommand."""
    error = _error(text)
    for part in says:
        assert part in error.problem
    assert error.subcommand == sub
    assert error.usage == (usage(sub) if sub else usage(None) + "\nMore: `/nexthink help`")


def test_escapes_user_text_in_messages() -> None:
    """User text quoted in a message cannot inject Slack markup (``<!channel>``, links)."""
    error = _error("run wf &lt;!channel&gt;")
    assert "<" not in error.problem
    assert "`&lt;!channel&gt;`" in error.problem


def test_clips_long_words_in_messages() -> None:
    """A huge offending word is clipped in the message."""
    error = _error("run wf " + "x" * 5000)
    assert len(error.problem) < 300


def test_target_limit() -> None:
    """At most 1,000 targets may be typed; more is refused before anything else happens."""
    ok = parse("run wf " + " ".join(f"device:d{i}" for i in range(MAX_TARGETS)))
    assert isinstance(ok, Run)
    assert len(ok.devices) == MAX_TARGETS
    error = _error("run wf " + " ".join(f"device:d{i}" for i in range(MAX_TARGETS + 1)))
    assert "Too many targets" in error.problem
    assert "1,000" in error.problem


# -- help and usage --------------------------------------------------------------------------


def test_help_lists_every_subcommand_with_an_example() -> None:
    """``HELP`` names each subcommand with its form and an example."""
    for sub in SUBCOMMANDS:
        assert f"`/nexthink {sub}" in HELP
    assert HELP.count("e.g. `/nexthink") == len(SUBCOMMANDS)
    assert "<" not in HELP  # mrkdwn: nothing Slack would read as markup


@pytest.mark.parametrize("sub", SUBCOMMANDS, ids=SUBCOMMANDS)
def test_usage_shows_form_and_example(sub: str) -> None:
    """``usage(sub)`` shows the subcommand's form and an example that parses."""
    text = usage(sub)
    assert text.startswith(f"Usage: `/nexthink {sub}")
    example = text.split("Example: `", 1)[1].rstrip("`").removeprefix("/nexthink ")
    parse(example)


def test_usage_without_subcommand_lists_all() -> None:
    """``usage(None)`` and an unknown name list every form."""
    assert usage("nope") == usage(None)
    for sub in SUBCOMMANDS:
        assert f"`/nexthink {sub}" in usage(None)


# -- properties --------------------------------------------------------------------------------

_SLACKISH = st.sampled_from(
    [
        *["run", "list", "info", "resume", "history", "help", "user:", "device:", "=", ":"],
        *['"', "'", "“", "”", "‘", "’", "„", "\\", "<", ">", "&", ";", "@", "#", "!", "|", "^"],
        *["mailto:", "http://", "a", "b", "U01", "W0", "C1", "S-1-5", "x@y.co", WF, EX],
        *["&amp;", "&lt;", "&gt;", "<@U01|x>", "<@U01>", "<#C1>", "<#C1|c>", "<mailto:a@b.co>"],
        *[
            "<!here>",
            "<!subteam^S1|@t>",
            "<http://x|y>",
            " ",
            " ",
            " ",
            "\u00a0",
            "\u200b",
            "\n",
            "\t",
        ],
    ]
)


@settings(max_examples=500)
@given(st.text())
def test_any_text_parses_or_raises_grammar_error(text: str) -> None:
    """Whatever the text, ``parse`` returns a command or raises ``GrammarError``, nothing else."""
    error: GrammarError | None = None
    try:
        command: Command | None = parse(text)
    except GrammarError as exc:
        command, error = None, exc
    if error is not None:
        assert error.problem
        assert error.usage
    else:
        assert isinstance(command, OpenModal | Help | ListWorkflows | Info | Run | Resume | History)


@settings(max_examples=1000)
@given(st.lists(_SLACKISH, max_size=25).map("".join))
def test_slackish_text_parses_or_raises_grammar_error(text: str) -> None:
    """Text made of Slack markup, quotes and command words never breaks the parser."""
    error: GrammarError | None = None
    try:
        parse(text)
    except GrammarError as exc:
        error = exc
    if error is not None:
        assert error.problem
        assert error.usage.startswith("Usage")


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _quote(text: str) -> str:
    escaped = "".join("\\" + c if c in "\\\"“”„‟＂'‘’‚‛" else c for c in text)
    return '"' + _slack_escape(escaped) + '"'


_VALUE_TEXT = st.text(
    st.characters(blacklist_characters="\u00a0\u2007\u202f\u200b\u2060\ufeff"),
    min_size=1,
    max_size=200,
)


@given(name=st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,20}\Z"), value=_VALUE_TEXT)
def test_any_quoted_value_comes_back_unchanged(name: str, value: str) -> None:
    """A value quoted with backslash escapes, sent with Slack's escaping, is read back exactly."""
    command = parse(f"run wf {name}={_quote(value)}")
    assert command == Run("wf", params=((name, value),))


@given(
    st.lists(
        st.text("abcXYZ019-_.", min_size=1, max_size=12).filter(lambda s: s[0] != "-"),
        min_size=1,
        max_size=20,
        unique=True,
    )
)
def test_device_names_come_back_in_order(names: list[str]) -> None:
    """Plain device names are read back as name targets, in order."""
    command = parse("run wf " + " ".join(f"device:{n}" for n in names))
    assert command == Run("wf", devices=tuple(DeviceTarget("name", n) for n in names))


@given(st.emails().filter(is_upn))
def test_upns_and_their_mailto_links_agree(email: str) -> None:
    """``user:`` with a UPN, or with Slack's mailto link of it, gives the same UPN target."""
    typed = parse(f"run wf user:{_slack_escape(email)}")
    linked = parse(f"run wf user:<mailto:{email}|{email}>")
    assert typed == linked == Run("wf", users=(UserTarget("upn", email),))
