"""The secret scan itself can fail: a secret logged by a test fails the session, also when the
object holding it was made and dropped inside the test's body."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

INNER = """
import logging

from bot.sandbox.server import Sandbox


def test_logs_a_secret_of_a_sandbox_it_drops() -> None:
    secret = Sandbox(client_secret="inner-secret-{kind}").client_secret
    logging.getLogger("inner").warning("the secret is %s", {logged})
"""


def _inner_session(tmp_path: Path, logged: str) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_inner.py"
    test.write_text(textwrap.dedent(INNER.format(kind="x7q2", logged=logged)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(  # noqa: S603 - our own interpreter and pytest
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.support.secret_scan", str(test)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_a_logged_secret_fails_the_session(tmp_path: Path) -> None:
    result = _inner_session(tmp_path, "secret")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "test_logs_a_secret_of_a_sandbox_it_drops: inn…" in result.stdout
    assert "inner-secret-x7q2" not in result.stdout  # the report masks it


@pytest.mark.slow
def test_a_clean_session_passes(tmp_path: Path) -> None:
    result = _inner_session(tmp_path, "'nothing secret'")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "none found" in result.stdout
