"""``nexthink-bot console`` as a person scripts it: an empty environment, commands on stdin."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = """\
/nexthink help
/nexthink list
/nexthink run restart_teams mode=hard
/nexthink
4
2

/nexthink run request_software software=Visio
/as carol
1
"""


def _console(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).with_name("nexthink-bot")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    return subprocess.run(  # noqa: S603 - our own console script, arguments fixed
        [str(executable), "console"],
        input=script,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_a_scripted_session_runs_the_whole_bot_on_the_sandbox(tmp_path: Path) -> None:
    """Help, list, a run, a form-driven run and a paused execution approved by a second person
    all work from stdin with no configuration, and the console exits 0 at the end of input."""
    done = _console(SCRIPT, tmp_path)
    out = done.stdout
    assert done.returncode == 0, done.stderr
    first = out.splitlines()[0]
    assert "built-in Nexthink sandbox" in first
    assert "/nexthink run WORKFLOW" in out  # help
    assert re.search(r"Workflows you may run: \d+", out)  # list
    runs = re.findall(r"Nexthink request: `([0-9a-f-]{36})`", out)
    assert len(runs) >= 3, out  # the typed run, the form's run, request_software
    assert "└ submitted" in out
    assert "Parameters: `mode=hard`" in out
    assert "asks to install Visio" in out
    assert re.search(r"Approve — decided by @carol", out), out
    assert "Nexthink resumed the execution" in out
    assert not (tmp_path / "nexthink-bot.db").exists()  # the console keeps nothing


def test_a_failing_command_line_is_answered_and_the_session_goes_on(tmp_path: Path) -> None:
    """A mistake gets its explanation; an unknown console command is named; exit stays 0."""
    done = _console("/nexthink rnu restart_teams\n/frobnicate\n/nexthink list teams\n", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Did you mean `run`?" in done.stdout
    assert "Not understood: '/frobnicate'" in done.stdout
    assert "Restart Teams" in done.stdout
