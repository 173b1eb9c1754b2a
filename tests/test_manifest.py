"""manifest.yaml: valid for Slack, naming only what handlers/ids.py defines, asking for the scopes the bot uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from handlers import ids

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "manifest.yaml"
SCHEMA = ROOT / "tests" / "fixtures" / "slack-manifest.schema.1.0.0.json"
EVENTS_URL = "https://bot.example.com/slack/events"
BOT_SCOPES = {
    "commands",
    "chat:write",
    "chat:write.public",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "im:write",
}


def load_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(path.read_text())
    return manifest


def manifest_callbacks(manifest: dict[str, Any]) -> set[str]:
    """Every callback_id the manifest names (shortcuts, workflow steps, functions)."""
    features = manifest.get("features", {})
    named = [
        *features.get("shortcuts", []),
        *features.get("workflow_steps", []),
        *features.get("functions", []),
    ]
    return {item["callback_id"] for item in named}


def manifest_commands(manifest: dict[str, Any]) -> set[str]:
    """Every slash command the manifest declares."""
    return {item["command"] for item in manifest.get("features", {}).get("slash_commands", [])}


def _id_constants() -> set[str]:
    return {value for name, value in vars(ids).items() if name.isupper() and isinstance(value, str)}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return load_manifest()


def test_manifest_validates_against_slacks_schema(manifest: dict[str, Any]) -> None:
    """manifest.yaml satisfies Slack's manifest JSON Schema (v1, draft-07)."""
    schema = json.loads(SCHEMA.read_text())
    Draft7Validator.check_schema(schema)
    errors = sorted(
        Draft7Validator(schema).iter_errors(manifest), key=lambda e: list(e.absolute_path)
    )
    assert [f"{list(e.absolute_path)}: {e.message}" for e in errors] == []


def test_command_and_callbacks_are_constants_in_ids(manifest: dict[str, Any]) -> None:
    """The slash command and every callback_id in the manifest are values defined in handlers.ids."""
    assert manifest_commands(manifest) == {ids.COMMAND}
    assert manifest_callbacks(manifest) <= _id_constants()


def test_both_shortcuts_are_declared_with_their_kinds(manifest: dict[str, Any]) -> None:
    """The global and the message shortcut are declared under their ids.py callback IDs."""
    kinds = {s["callback_id"]: s["type"] for s in manifest["features"]["shortcuts"]}
    assert kinds == {ids.GLOBAL_SHORTCUT: "global", ids.MESSAGE_SHORTCUT: "message"}


def test_bot_scopes_are_exactly_what_the_bot_uses(manifest: dict[str, Any]) -> None:
    """The bot token asks for the scopes the bot's Web API calls need, and no others."""
    scopes = manifest["oauth_config"]["scopes"]
    assert set(scopes["bot"]) == BOT_SCOPES
    assert "user" not in scopes


def test_surfaces_and_delivery_settings(manifest: dict[str, Any]) -> None:
    """Home tab, app_home_opened, interactivity, Socket Mode and org-wide deploy are on; token rotation off."""
    features, settings = manifest["features"], manifest["settings"]
    assert manifest["display_information"]["name"] == "Nexthink"
    assert features["app_home"]["home_tab_enabled"] is True
    assert features["app_home"]["messages_tab_enabled"] is True
    assert features["bot_user"]["display_name"]
    assert settings["event_subscriptions"]["bot_events"] == [
        "app_home_opened",
        "app_uninstalled",
        "tokens_revoked",
    ]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True
    assert settings["org_deploy_enabled"] is True
    assert settings["token_rotation_enabled"] is False


def test_every_request_url_is_the_bots_events_endpoint(manifest: dict[str, Any]) -> None:
    """Commands, events, interactivity and options all point at the one /slack/events placeholder."""
    settings = manifest["settings"]
    urls = {
        *(c["url"] for c in manifest["features"]["slash_commands"]),
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
        settings["interactivity"]["message_menu_options_url"],
    }
    assert urls == {EVENTS_URL}


def test_oauth_redirect_is_the_bots_redirect_endpoint(manifest: dict[str, Any]) -> None:
    """The one OAuth redirect URL is the placeholder host's /slack/oauth_redirect, which Bolt serves."""
    assert manifest["oauth_config"]["redirect_urls"] == [
        "https://bot.example.com/slack/oauth_redirect"
    ]


def test_mentions_reach_the_command_escaped(manifest: dict[str, Any]) -> None:
    """/nexthink has should_escape on, so user:@someone arrives as <@U…|name> for the target parser."""
    [command] = manifest["features"]["slash_commands"]
    assert command["should_escape"] is True


def test_an_oauth_install_asks_for_the_manifests_bot_scopes(manifest: dict[str, Any]) -> None:
    assert list(ids.BOT_SCOPES) == manifest["oauth_config"]["scopes"]["bot"]
