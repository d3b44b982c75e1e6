"""The Dockerfile, checked without a Docker engine: its targets, user, health checks, pinned
base image, cached dependency layer and build context, and (integration tier) its install steps
replayed outside Docker into a working `kcc`."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click
import pytest
from kcc_cli.main import cli
from kcc_shared.config import Config

from conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# Image targets and the command each runs by default (docs/deployment.md).
TARGETS = {
    "intake": ["kcc", "intake", "serve"],
    "backoffice": ["kcc", "backoffice", "serve"],
    "router": ["kcc", "router", "run"],
    "sla-monitor": ["kcc", "sla", "serve"],
}
# gunicorn binds KCC_HTTP_BIND; every other process serves health on KCC_METRICS_PORT.
HTTP_COMMANDS = {("intake", "serve"), ("backoffice", "serve"), ("sla", "serve")}


# -- parsing ----------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: dict[str, Stage]

    def chain(self, name: str) -> list[Stage]:
        """The stage and the stages it is built FROM, base first."""
        stages: list[Stage] = []
        current: str | None = name
        while current is not None and current in self.stages:
            stage = self.stages[current]
            stages.insert(0, stage)
            current = stage.base if stage.base in self.stages else None
        return stages

    def last(self, name: str, keyword: str) -> Instruction | None:
        found = [i for s in self.chain(name) for i in s.all(keyword)]
        return found[-1] if found else None

    def env(self, name: str) -> dict[str, str]:
        env: dict[str, str] = {}
        for stage in self.chain(name):
            for instruction in stage.all("ENV"):
                env.update(parse_env(instruction.args))
        return env

    def exposed(self, name: str) -> set[int]:
        return {
            int(port.split("/")[0])
            for stage in self.chain(name)
            for instruction in stage.all("EXPOSE")
            for port in instruction.args.split()
        }

    def base_images(self) -> list[str]:
        """Every FROM that is not an earlier stage, with global ARGs substituted."""
        return [
            substitute(stage.base, self.args)
            for stage in self.stages.values()
            if stage.base not in self.stages
        ]


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Instructions with their continuation lines joined; comment lines dropped."""
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buffer):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        yield start, " ".join(part for part in buffer if part)
        buffer = []
    if buffer:
        yield start, " ".join(buffer)


def parse_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for number, line in logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else f"#{len(stages)}"
            current = stages[name] = Stage(name, words[0])
        elif current is None:
            if keyword != "ARG":
                raise AssertionError(f"Dockerfile line {number}: {keyword} before FROM")
            key, _, value = rest.partition("=")
            args[key.strip()] = value.strip()
        else:
            current.instructions.append(Instruction(keyword, rest.strip(), number))
    return Dockerfile(args, stages)


def substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values[m.group(1) or m.group(2)], text)


def parse_env(args: str) -> dict[str, str]:
    words = shlex.split(args)
    if len(words) >= 2 and "=" not in words[0]:  # legacy form: ENV KEY value with spaces
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not exec form (a JSON list): {args}"
    return [str(v) for v in value]


def healthcheck_command(dockerfile: Dockerfile, target: str) -> list[str]:
    instruction = dockerfile.last(target, "HEALTHCHECK")
    assert instruction is not None, f"target {target} has no HEALTHCHECK"
    _, _, command = instruction.args.partition("CMD ")
    return exec_form(command)


def copy_sources(instruction: Instruction) -> list[str]:
    words = [w for w in shlex.split(instruction.args) if not w.startswith("--")]
    return words[:-1]


def click_command(argv: list[str]) -> click.Command | None:
    """The click command `kcc ...` would run, or None if there is no such command."""
    assert argv[0] == "kcc"
    command: click.Command = cli
    for word in argv[1:]:
        if not isinstance(command, click.Group):
            return None
        found = command.commands.get(word)
        if found is None:
            return None
        command = found
    return command


def health_variable(command: list[str]) -> str:
    """The variable whose port a process started by `command` serves /readyz on."""
    return "KCC_HTTP_BIND" if tuple(command[1:3]) in HTTP_COMMANDS else "KCC_METRICS_PORT"


def workspace_members() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    members: list[str] = pyproject["tool"]["uv"]["workspace"]["members"]
    return members


# -- .dockerignore (Docker's rules: last matching pattern wins; a pattern matching a parent
# directory matches everything below it) ----------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def dockerignore_rules(path: Path = DOCKERIGNORE) -> list[tuple[bool, re.Pattern[str]]]:
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((include, _pattern_regex(pattern)))
    return rules


def in_build_context(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    included = True
    for include, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            included = include
    return included


# -- a stand-in for a service's health endpoint ------------------------------------------------


class HealthStub:
    """Answers GET /readyz with a chosen status and records the paths asked for."""

    def __init__(self, status: int) -> None:
        stub = self
        self.status = status
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.paths.append(self.path)
                code = stub.status if self.path == "/readyz" else 404
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HealthStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_probe(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A HEALTHCHECK or compose healthcheck test (exec form, `python -c ...`) run here."""
    assert command[:2] in (["python", "-c"], ["CMD", "python"]), command
    argv = command[1:] if command[0] == "CMD" else command
    # `python` in the image is the venv's interpreter; the probe uses the standard library only.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KCC_")}
    return subprocess.run(
        [sys.executable, *argv[1:]],
        check=False,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def probe_env(variable: str, port: int) -> dict[str, str]:
    return {variable: f"0.0.0.0:{port}" if variable == "KCC_HTTP_BIND" else str(port)}


# -- tests ------------------------------------------------------------------------------------

dockerfile = parse_dockerfile()


def test_every_service_has_a_target_running_a_real_kcc_command() -> None:
    assert set(TARGETS) <= set(dockerfile.stages), "missing image targets"
    for target, expected in TARGETS.items():
        cmd = dockerfile.last(target, "CMD")
        assert cmd is not None, f"target {target} has no CMD"
        command = exec_form(cmd.args)
        assert command == expected, f"target {target} runs {command}, expected {expected}"
        assert click_command(command) is not None, f"{' '.join(command)} is not a kcc command"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_runs_as_the_unprivileged_kcc_user(target: str) -> None:
    user = dockerfile.last(target, "USER")
    assert user is not None, f"target {target} runs as root (no USER)"
    uid, _, gid = user.args.partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit(), f"USER of {target} must be numeric, is {user.args!r}"
    assert int(uid) != 0
    assert gid == "" or (gid.isdigit() and int(gid) != 0)
    created = " ".join(i.args for s in dockerfile.chain(target) for i in s.all("RUN"))
    assert f"--uid {uid}" in created, f"no user with uid {uid} is created for {target}"


def test_base_images_are_pinned_to_an_exact_version() -> None:
    bases = dockerfile.base_images()
    assert bases
    for image in bases:
        _, _, tag = image.partition("@")[0].rpartition(":")
        assert "@sha256:" in image or re.match(r"\d+\.\d+\.\d+", tag), (
            f"base image {image} is not pinned to an exact version (x.y.z) or digest"
        )
        assert "latest" not in tag


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_exposes_the_port_its_process_listens_on(target: str) -> None:
    command = TARGETS[target]
    env = dockerfile.env(target)
    if health_variable(command) == "KCC_HTTP_BIND":
        assert "KCC_HTTP_BIND" in env, f"{target} must set KCC_HTTP_BIND (0.0.0.0:<port>)"
        host, _, port = env["KCC_HTTP_BIND"].rpartition(":")
        assert host == "0.0.0.0", "gunicorn must listen on every interface in a container"
        assert int(port) in dockerfile.exposed(target)
    assert Config().metrics_port in dockerfile.exposed(target)
    assert env.get("KCC_METRICS_HOST") == "0.0.0.0"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_health_check_passes_only_when_the_process_is_ready(target: str) -> None:
    probe = healthcheck_command(dockerfile, target)
    variable = health_variable(TARGETS[target])
    with HealthStub(200) as stub:
        ready = run_probe(probe, probe_env(variable, stub.port))
        stub.status = 503
        not_ready = run_probe(probe, probe_env(variable, stub.port))
    assert ready.returncode == 0, ready.stderr
    assert stub.paths == ["/readyz", "/readyz"], "the check must ask /readyz"
    assert not_ready.returncode != 0, "a 503 from /readyz must make the container unhealthy"
    nobody = run_probe(probe, probe_env(variable, free_port()))
    assert nobody.returncode != 0, "nothing listening must make the container unhealthy"


def test_copied_files_exist_and_are_in_the_build_context() -> None:
    rules = dockerignore_rules()
    copies = [
        i
        for s in dockerfile.stages.values()
        for i in s.all("COPY")
        if not any(w.startswith("--from") for w in i.args.split())
    ]
    assert copies
    for instruction in copies:
        for source in copy_sources(instruction):
            path = ROOT / source
            assert path.exists(), f"Dockerfile line {instruction.line}: {source} does not exist"
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            for file in files:
                relative = file.relative_to(ROOT).as_posix()
                if "__pycache__" in relative:
                    continue
                assert in_build_context(relative, rules), (
                    f".dockerignore excludes {relative}, which line {instruction.line} copies"
                )


def test_build_context_leaves_out_local_state_and_secrets() -> None:
    rules = dockerignore_rules()
    for path in (".venv/bin/python", "var/dev/intake.db", ".git/HEAD", ".env", "tests/stack.py"):
        assert not in_build_context(path, rules), f"{path} would be sent to the Docker daemon"
    assert in_build_context("services/intake/src/intake/app.py", rules)


def test_dependency_layer_is_built_before_the_sources_are_copied() -> None:
    build = next(
        s for s in dockerfile.stages.values() if any("uv sync" in i.args for i in s.all("RUN"))
    )
    steps = build.instructions
    syncs = [n for n, i in enumerate(steps) if i.keyword == "RUN" and "uv sync" in i.args]
    assert len(syncs) == 2, "expected a dependency sync and a project sync"
    copied_before = [s for i in steps[: syncs[0]] if i.keyword == "COPY" for s in copy_sources(i)]
    manifests = ["pyproject.toml", "uv.lock"] + [f"{m}/pyproject.toml" for m in workspace_members()]
    for manifest in manifests:
        assert manifest in copied_before, f"{manifest} is not copied before the dependency layer"
    assert not [s for s in copied_before if "/src" in s], "sources copied before dependencies"
    first = steps[syncs[0]].args
    for flag in ("--frozen", "--no-install-workspace", "--no-dev"):
        assert flag in first, f"the dependency layer must use uv sync {flag}"
    copied_after = [
        s for i in steps[syncs[0] : syncs[1]] if i.keyword == "COPY" for s in copy_sources(i)
    ]
    for member in workspace_members():
        assert f"{member}/src" in copied_after, f"the sources of {member} are not copied"
    for flag in ("--frozen", "--no-dev", "--no-editable"):
        assert flag in steps[syncs[1]].args, f"the project install must use uv sync {flag}"


# -- the install steps, replayed --------------------------------------------------------------


def uv_binary() -> str:
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(found).exists():
        unavailable("uv is not installed (make install puts it in ~/.local/bin)")
    return found


def replay_copy(
    source: str, destination: Path, *, into: bool, rules: list[tuple[bool, re.Pattern[str]]]
) -> None:
    """COPY as Docker does it: a directory's contents (not the directory) go to the
    destination, a file goes into it when it ends with '/'; only what the context holds."""
    origin = ROOT / source
    if origin.is_file():
        files = {origin: destination / origin.name if into else destination}
    else:
        files = {f: destination / f.relative_to(origin) for f in origin.rglob("*") if f.is_file()}
    for file, target in files.items():
        if in_build_context(file.relative_to(ROOT).as_posix(), rules):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)


@pytest.fixture(scope="module")
def built_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build stage's COPY and `uv sync` steps, run here in order into a temporary /app."""
    app = tmp_path_factory.mktemp("image") / "app"
    app.mkdir()
    build = next(
        s for s in dockerfile.stages.values() if any("uv sync" in i.args for i in s.all("RUN"))
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    uv = uv_binary()
    rules = dockerignore_rules()
    for instruction in build.instructions:
        if instruction.keyword == "ENV":
            env.update(parse_env(instruction.args))
        elif instruction.keyword == "COPY":
            words = [w for w in shlex.split(instruction.args) if not w.startswith("--")]
            *sources, destination = words
            for source in sources:
                replay_copy(source, app / destination, into=destination.endswith("/"), rules=rules)
        elif instruction.keyword == "RUN" and "uv sync" in instruction.args:
            argv = shlex.split(instruction.args[instruction.args.index("uv sync") :])
            # The image's paths, moved into the temporary folder; the interpreter is this one.
            env["UV_PROJECT_ENVIRONMENT"] = str(app / ".venv")
            env["UV_PYTHON"] = os.path.realpath(sys.executable)
            subprocess.run([uv, *argv[1:]], cwd=app, env=env, check=True, timeout=600)
    return app / ".venv"


@pytest.mark.integration
def test_image_environment_runs_kcc_without_the_sources(
    built_venv: Path, tmp_path: Path, wait_for: Callable[..., None]
) -> None:
    # Only the venv goes into the runtime image: the sources must not be needed.
    for member in workspace_members():
        shutil.rmtree(built_venv.parent / member / "src")
    kcc = built_venv / "bin" / "kcc"
    env = {
        "PATH": f"{built_venv / 'bin'}:/usr/bin:/bin",
        "KCC_DATABASE_URL": f"sqlite:///{tmp_path / 'intake.db'}",
        "KCC_BROKER_URL": "memory://",
        "KCC_LOG_FORMAT": "text",
        "KCC_HTTP_BIND": f"127.0.0.1:{free_port()}",
        "KCC_HTTP_WORKERS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    # The packaged data files made it into the wheels: the example organisation loads.
    check = subprocess.run(
        [str(kcc), "config", "check"],
        check=False,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    server = subprocess.Popen(  # the intake target's default command
        [str(kcc), *TARGETS["intake"][1:]],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    probe = healthcheck_command(dockerfile, "intake")
    try:
        wait_for(lambda: server.poll() is None and run_probe(probe, env).returncode == 0, 60, 0.5)
    finally:
        os.killpg(server.pid, 15)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr[-2000:]
