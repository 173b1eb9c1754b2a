"""Shared fixtures. The environment is scrubbed of every setting so no test reads the developer's."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.support.secret_scan"]

_PREFIXES = (
    "SLACK_",
    "NEXTHINK_",
    "DATABASE_URL",
    "POLICY_FILE",
    "LOG_",
    "PORT",
    "PROFILE_CACHE_",
    "FOLLOWUP_",
    "HOME_REFRESH_",
    "AUDIT_",
)


@pytest.fixture(autouse=True)
def _clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    # a .env file in the working directory must not leak into tests
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
