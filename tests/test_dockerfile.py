"""The Dockerfile, read as Docker reads it (no Docker engine runs here), and its builder's
commands run outside Docker from a clean copy of the repository."""

# ruff: noqa: S603, S607 - the tests run this repository's own commands (git, sh, the venv's)

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
VENV_IN_IMAGE = "/opt/venv"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the logical line, continuations joined
    stage: str  # the name (or index) of the stage it belongs to

    def exec_form(self) -> list[str] | None:
        """The JSON array of ``CMD ["a", "b"]``, else None (shell form)."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list)
        return [str(v) for v in value]


def parse(text: str) -> list[Instruction]:
    """Logical lines (``\\`` continuations joined, comments dropped) as instructions by stage."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    instructions = []
    stage = "<global>"
    count = 0
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            stage = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(count)
            count += 1
        instructions.append(Instruction(keyword, args.strip(), stage))
    return instructions


def env_pairs(args: str) -> dict[str, str]:
    """``ENV A=1 B="two words"`` as a dict (the legacy ``ENV A 1`` form is not used here)."""
    pairs = {}
    for word in shlex.split(args):
        name, sep, value = word.partition("=")
        assert sep, f"ENV {args!r}: write NAME=value"
        pairs[name] = value
    return pairs


def stages(instructions: list[Instruction]) -> list[str]:
    names = []
    for instruction in instructions:
        if instruction.stage not in names and instruction.stage != "<global>":
            names.append(instruction.stage)
    return names


def in_stage(instructions: list[Instruction], stage: str, keyword: str) -> list[Instruction]:
    return [i for i in instructions if i.stage == stage and i.keyword == keyword]


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def runtime(dockerfile: list[Instruction]) -> str:
    return stages(dockerfile)[-1]


def _env(instructions: list[Instruction], stage: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in in_stage(instructions, stage, "ENV"):
        env.update(env_pairs(instruction.args))
    return env


# -- structure ------------------------------------------------------------------------------


def test_parser_joins_continuations_and_names_stages() -> None:
    """The parser joins continued lines, skips comments and names stages by their AS."""
    parsed = parse(
        '# comment\nARG X=1\nFROM a AS one\nRUN echo a \\\n  # inside\n  && echo b\nFROM b\nCMD ["x"]\n'
    )
    assert [(i.keyword, i.stage) for i in parsed] == [
        ("ARG", "<global>"),
        ("FROM", "one"),
        ("RUN", "one"),
        ("FROM", "1"),
        ("CMD", "1"),
    ]
    assert parsed[2].args == "echo a && echo b"
    assert parsed[4].exec_form() == ["x"]


def test_two_stages_on_the_same_slim_python_311(dockerfile: list[Instruction]) -> None:
    """A builder stage and a runtime stage, both on the same slim Python 3.11 image."""
    names = stages(dockerfile)
    assert names == ["builder", "runtime"]
    bases = [i.args.split()[0] for i in dockerfile if i.keyword == "FROM"]
    assert len(set(bases)) == 1, "the venv's interpreter path must be the same in both stages"
    (arg,) = [i for i in dockerfile if i.keyword == "ARG" and i.stage == "<global>"]
    name, _, default = arg.args.partition("=")
    assert bases[0] == "${" + name + "}"
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", default), default


def test_builder_installs_pinned_uv_then_runtime_requirements_then_the_project(
    dockerfile: list[Instruction],
) -> None:
    """uv comes pinned from requirements/dev.txt; the venv gets requirements/runtime.txt, then the project without dependencies."""
    runs = [i.args for i in in_stage(dockerfile, "builder", "RUN")]
    assert re.search(r"^uv==\S+$", (ROOT / "requirements/dev.txt").read_text(), re.M)
    uv_step = next(i for i, r in enumerate(runs) if "pip install" in r and "'^uv=='" in r)
    assert "requirements/dev.txt" in runs[uv_step]
    deps_step = next(i for i, r in enumerate(runs) if "requirements/runtime.txt" in r)
    assert "uv pip sync" in runs[deps_step] or "uv pip install" in runs[deps_step]
    assert "uv venv" in runs[deps_step]
    project_step = next(i for i, r in enumerate(runs) if "--no-deps" in r)
    assert re.search(r"uv pip install .*--no-deps.* \.$", runs[project_step])
    assert uv_step < deps_step < project_step
    for run in runs:
        assert VENV_IN_IMAGE not in run, "RUN lines name the venv as $VIRTUAL_ENV"
    assert _env(dockerfile, "builder")["VIRTUAL_ENV"] == VENV_IN_IMAGE


def test_runtime_copies_only_the_venv_from_the_builder(
    dockerfile: list[Instruction], runtime: str
) -> None:
    """The runtime stage takes the virtual environment from the builder and nothing else."""
    copies = in_stage(dockerfile, runtime, "COPY")
    assert [c.args for c in copies] == [f"--from=builder {VENV_IN_IMAGE} {VENV_IN_IMAGE}"]
    env = _env(dockerfile, runtime)
    assert env["PATH"].startswith(f"{VENV_IN_IMAGE}/bin:")


def test_runs_as_a_non_root_user_that_owns_the_data_volume(
    dockerfile: list[Instruction], runtime: str
) -> None:
    """The last USER is numeric and not root; that user is created and owns /data, the VOLUME."""
    users = in_stage(dockerfile, runtime, "USER")
    assert users, "the runtime stage must set USER"
    uid, _, gid = users[-1].args.partition(":")
    assert uid.isdigit(), "a numeric uid lets Kubernetes check runAsNonRoot"
    assert int(uid) != 0
    assert not gid or int(gid) != 0
    setup = " ".join(r.args for r in in_stage(dockerfile, runtime, "RUN"))
    assert "useradd" in setup
    assert f"--uid {uid}" in setup
    assert re.search(r"chown \S+ /data", setup)
    (volume,) = in_stage(dockerfile, runtime, "VOLUME")
    assert json.loads(volume.args) == ["/data"]
    assert _env(dockerfile, runtime)["DATABASE_URL"] == "sqlite:////data/nexthink-bot.db"


def test_port_is_3000_and_exposed(dockerfile: list[Instruction], runtime: str) -> None:
    """PORT defaults to 3000 and that port is EXPOSEd."""
    assert _env(dockerfile, runtime)["PORT"] == "3000"
    (expose,) = in_stage(dockerfile, runtime, "EXPOSE")
    assert expose.args == "3000"


def test_the_container_runs_nexthink_bot_serve(dockerfile: list[Instruction], runtime: str) -> None:
    """ENTRYPOINT and CMD together run `nexthink-bot serve`, in exec form so SIGTERM reaches it."""
    entrypoint = in_stage(dockerfile, runtime, "ENTRYPOINT")
    command = in_stage(dockerfile, runtime, "CMD")
    words: list[str] = []
    for found in (entrypoint, command):
        if found:
            form = found[-1].exec_form()
            assert form is not None, f"{found[-1].keyword} must use the exec (JSON) form"
            words += form
    assert words == ["nexthink-bot", "serve"]
    stop = in_stage(dockerfile, runtime, "STOPSIGNAL")
    assert not stop or stop[-1].args == "SIGTERM"


def _healthcheck_command(dockerfile: list[Instruction], runtime: str) -> str:
    (check,) = in_stage(dockerfile, runtime, "HEALTHCHECK")
    options, sep, command = check.args.partition(" CMD ")
    assert sep, "HEALTHCHECK ... CMD <command>"
    assert re.search(r"--timeout=\d+s", options)
    assert re.search(r"--interval=\d+s", options)
    return command


def test_healthcheck_asks_healthz_with_python(dockerfile: list[Instruction], runtime: str) -> None:
    """The HEALTHCHECK asks /healthz on PORT with Python's urllib (slim images have no curl)."""
    command = _healthcheck_command(dockerfile, runtime)
    for needed in ("/healthz", "urllib.request", "PORT"):
        assert needed in command
    for absent in ("curl", "wget"):
        assert absent not in command


async def test_healthcheck_command_passes_on_a_healthy_server_and_fails_otherwise(
    dockerfile: list[Instruction], runtime: str
) -> None:
    """Run the HEALTHCHECK's shell command: exit 0 when /healthz answers 200, non-zero when the port is closed or 503."""
    command = _healthcheck_command(dockerfile, runtime)
    status = {"code": 200}

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, status=status["code"])

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]

    async def run(on_port: int) -> int:
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PORT": str(on_port)}
        process = await asyncio.create_subprocess_exec(
            "sh", "-c", command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            return await asyncio.wait_for(process.wait(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    try:
        assert await run(port) == 0
        status["code"] = 503
        assert await run(port) != 0
    finally:
        await runner.cleanup()
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert await run(closed) != 0


def test_dockerignore_keeps_the_context_to_what_the_builder_copies(
    dockerfile: list[Instruction],
) -> None:
    """.dockerignore excludes everything but the sources the builder COPYs (and caches, databases, .env)."""
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "start from nothing, then allow what the builder needs"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    sources = set()
    for copy in in_stage(dockerfile, "builder", "COPY"):
        *srcs, _dest = copy.args.split()
        sources.update(s.rstrip("/") for s in srcs if not s.startswith("--"))
    assert sources == allowed
    for path in sources:
        assert (ROOT / path).exists(), f"COPY {path}: no such file in the repository"
    for excluded in ("**/__pycache__", "**/.env"):
        assert excluded in lines


# -- the builder's commands, for real -------------------------------------------------------


def _clean_copy(destination: Path) -> None:
    """The files git knows (tracked, or new and not ignored): what a fresh checkout would hold."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if not source.is_file():  # deleted in the working tree
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _copy_into(source_root: Path, workdir: Path, args: str) -> None:
    """``COPY src... dest`` with ``dest`` relative to WORKDIR, as Docker copies it."""
    *sources, dest = args.split()
    assert not dest.startswith("/"), f"COPY {args}: the builder copies relative to WORKDIR"
    into_directory = dest.endswith("/") or dest in {".", "./"} or len(sources) > 1
    for source in sources:
        origin = source_root / source.rstrip("/")
        if origin.is_dir():  # a directory's contents go into dest
            shutil.copytree(origin, workdir / dest, dirs_exist_ok=True)
        else:
            target = workdir / dest / origin.name if into_directory else workdir / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


def _network_settings() -> dict[str, str]:
    """How this machine reaches the package index (proxies, CA bundles, index URLs): passed on
    as a docker build would get them through build arguments; nothing else leaks in."""
    wanted = re.compile(
        r"(?i)(proxy|^ssl_cert_|ca_bundle$|^pip_cert$|^pip_(extra_)?index_url$|"
        r"^uv_(default_)?index(_url)?$|^uv_extra_index_url$|^uv_native_tls$|^uv_system_certs$)"
    )
    return {name: value for name, value in os.environ.items() if wanted.search(name)}


@pytest.mark.slow
def test_builder_commands_install_a_working_bot_from_a_clean_copy(
    tmp_path: Path, dockerfile: list[Instruction]
) -> None:
    """The builder stage's COPY and RUN steps, replayed on a clean copy into a fresh venv, give a `nexthink-bot` that runs."""
    repo = tmp_path / "repo"
    _clean_copy(repo)
    # the builder image's system Python, here a fresh venv of its own (pip included)
    system = tmp_path / "system-python"
    subprocess.run([sys.executable, "-m", "venv", str(system)], check=True, timeout=120)
    venv = tmp_path / "opt-venv"
    env = {
        **_network_settings(),
        "PATH": f"{system / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
    }
    workdir = tmp_path / "build"
    for instruction in in_stage(dockerfile, "builder", "ENV"):
        for name, value in env_pairs(instruction.args).items():
            env[name] = value.replace(VENV_IN_IMAGE, str(venv))
    for instruction in in_stage(dockerfile, "builder", "WORKDIR"):
        workdir = tmp_path / "build" / instruction.args.lstrip("/")
    workdir.mkdir(parents=True, exist_ok=True)
    for instruction in dockerfile:
        if instruction.stage != "builder":
            continue
        if instruction.keyword == "COPY":
            _copy_into(repo, workdir, instruction.args)
        elif instruction.keyword == "RUN":
            done = subprocess.run(
                ["sh", "-c", instruction.args],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert done.returncode == 0, (
                f"RUN {instruction.args}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
    clean_env = {"PATH": "/usr/bin:/bin", "HOME": env["HOME"], "LANG": "C.UTF-8"}
    helped = subprocess.run(
        [str(venv / "bin" / "nexthink-bot"), "--help"],
        cwd=tmp_path,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert helped.returncode == 0, helped.stderr
    for command in ("serve", "console", "sandbox", "check"):
        assert command in helped.stdout
    # exactly the pinned versions, plus the project itself installed as a wheel (not editable)
    frozen = subprocess.run(
        [str(system / "bin" / "uv"), "pip", "freeze", "--python", str(venv / "bin" / "python")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    pinned = [
        line.split(";")[0].strip()
        for line in (ROOT / "requirements/runtime.txt").read_text().splitlines()
        if line.strip() and not line.startswith(("#", " "))
    ]
    project = [line for line in frozen if line.startswith("nexthink-slack-bot")]
    assert len(project) == 1, frozen
    assert sorted(line for line in frozen if line not in project) == sorted(pinned)
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import bot, handlers; print(bot.__file__)"],
        cwd=tmp_path,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(venv)), f"the project must be installed in the venv, not {where}"
    demo_policy = Path(where).parent / "console" / "demo-policy.yaml"
    assert demo_policy.is_file(), "package data (the console's demo policy) is in the wheel"
    assert os.access(venv / "bin" / "nexthink-bot", os.X_OK)
