"""Every command in the README works as written on a fresh clone, and says what the README says.

How the commands run:

* The shell commands of the README's ```sh blocks are taken in order (comment lines dropped,
  backslash continuations joined) and run one after the other in ONE bash, so that
  ``TOKEN=$(...)`` carries over to the curl commands that follow, as in a person's terminal.
* The working folder is a scratch "fresh clone": a symlink to every top-level entry git tracks,
  plus ``.venv`` (what ``make install`` leaves), and no ``var/`` — nothing from this checkout's
  own runs. The environment has no ``KCC_*`` variables.
* Where a command needs the running system, a ``kcc dev`` runs in that folder as ``make run``
  starts it (``.venv/bin/kcc dev``, data folder ``var/dev``), except for one substitution: the
  README's ``http://127.0.0.1:8000`` becomes ``http://127.0.0.1:<a free port>``, because other
  ``kcc dev`` processes on this machine may hold 8000. Nothing else in a command is changed.
* Each command must match an entry of ``EXPECTED`` (what its output must show, as the README
  describes it) or of ``NOT_RUN`` (commands a test cannot run, with the reason), so a new
  command cannot slip into the README untested.

Commands written inline in the prose (``kcc ...`` in backticks) cannot all be run (some start
servers), so for those the test checks that the subcommand and every option exist.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from kcc_cli.dev import DEMO_USERS
from kcc_cli.main import cli
from kcc_shared.organisation import load_organisation

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
README_BASE = "http://127.0.0.1:8000"

# Commands a test cannot run, and why. Matched at the start of the command.
NOT_RUN: dict[str, str] = {
    "make run": "installs with uv, then runs `kcc dev` in the foreground until Ctrl-C; the test "
    "starts that same `.venv/bin/kcc dev` itself, on a free port",
    "make test": "runs every test tier, this one included (and for many minutes)",
    "sudo apt-get install": "installs system packages: needs root and the network",
}

Check = Callable[[str, str], None]


def contains(*needles: str) -> Check:
    def check(stdout: str, stderr: str) -> None:
        for needle in needles:
            assert needle in stdout, f"expected {needle!r} in the output:\n{stdout}\n{stderr}"

    return check


def token_printed(stdout: str, stderr: str) -> None:
    # The assignment prints nothing; the notice goes to stderr, the token into $TOKEN.
    assert stdout == ""
    assert "created; store it now, it is not shown again" in stderr


def filed(stdout: str, stderr: str) -> None:
    assert re.search(r"^HTTP/1\.1 202", stdout, re.M), stdout
    assert re.search(r"^Location: /api/v1/requests/[0-9a-f-]{36}\s*$", stdout, re.M), stdout


def listed(stdout: str, stderr: str) -> None:
    page = json.loads(stdout)
    questions = [item["question"] for item in page["items"]]
    assert questions == ["WOZ-waarde te hoog, hoe maakt bewoner bezwaar?"]
    assert page["items"][0]["agent_id"] == "agent-anna"


def catalog(stdout: str, stderr: str) -> None:
    labels = json.dumps(json.loads(stdout), ensure_ascii=False)
    assert "Afval en containers" in labels


def held_out_figures(stdout: str, stderr: str) -> None:
    """The figures the README quotes for the shipped model are the ones the command prints."""
    readme = README.read_text(encoding="utf-8")
    for label, words in (
        ("right department", "right"),
        ("wrong department", "to a wrong department"),
        ("triage", "to triage"),
    ):
        match = re.search(rf"^{label}\s+\d+\s+([\d.]+)%$", stdout, re.M)
        assert match is not None, f"no '{label}' line in:\n{stdout}"
        assert f"{match[1]} % {words}" in readme, (
            f"the README does not say '{match[1]} % {words}' as kcc rules eval measures it"
        )


# What each command must show, keyed by the start of the command as the README writes it.
EXPECTED: dict[str, Check] = {
    "TOKEN=$(.venv/bin/kcc token create --data var/dev": token_printed,
    "curl -si -X POST http://127.0.0.1:8000/api/v1/requests": filed,
    'curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/api/v1/requests': listed,
    'curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/api/v1/catalog': catalog,
    '.venv/bin/kcc rules explain "Container is niet geleegd"': contains(
        "department:    afval (Afvalinzameling)", "why (Dutch):"
    ),
    ".venv/bin/kcc rules eval data/routing-validation.jsonl": held_out_figures,
    ".venv/bin/kcc rules eval data/routing-dev.jsonl --rules-only": contains(
        "model none (the rules alone)", "precision / recall per department:"
    ),
    ".venv/bin/kcc config example mijn-gemeente": contains(
        "wrote mijn-gemeente/organisation.yaml", "wrote mijn-gemeente/voorbeeldvragen.jsonl"
    ),
    ".venv/bin/kcc config check mijn-gemeente/organisation.yaml": contains(
        "OK: Gemeente Voorbeeldstad", "examples: 2449 questions"
    ),
}


def readme_commands(text: str) -> list[str]:
    """The shell commands of the ```sh blocks, in order, continuations joined."""
    commands: list[str] = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S):
        pending = ""
        for line in block.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            pending += line + "\n"
            if not line.endswith("\\"):
                commands.append(pending.rstrip("\n"))
                pending = ""
        assert not pending, f"a README command ends in a backslash: {pending!r}"
    return commands


def key_of(command: str) -> str:
    """The EXPECTED or NOT_RUN entry a command belongs to (exactly one)."""
    keys = [key for key in (*EXPECTED, *NOT_RUN) if command.startswith(key)]
    assert len(keys) == 1, (
        f"README command {command!r} matches {keys or 'no entry'}: add what it must show to "
        "EXPECTED in tests/test_readme.py, or to NOT_RUN with the reason it cannot run"
    )
    return keys[0]


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fresh_clone(folder: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in sorted({path.split("/")[0] for path in tracked} | {".venv"}):
        if name != "var":
            (folder / name).symlink_to(REPO_ROOT / name)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    """Run the README's commands against a `kcc dev` in a scratch clone; outcome per command."""
    clone = tmp_path_factory.mktemp("clone")
    results = tmp_path_factory.mktemp("results")
    _fresh_clone(clone)
    env = {key: value for key, value in os.environ.items() if not key.startswith("KCC_")}
    port = _free_port()
    base = f"http://127.0.0.1:{port}"

    dev = subprocess.Popen(
        [".venv/bin/kcc", "dev", "--port", str(port)],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert dev.stdout is not None
    started: list[str] = []
    drain: threading.Thread | None = None
    try:
        # `kcc dev` prints its address once it listens (connections wait for it from then on).
        for line in dev.stdout:
            started.append(line)
            if line.startswith(f"KCC dev: {base}/"):
                break
        assert dev.poll() is None, "kcc dev exited:\n" + "".join(started)
        # Keep reading, so that a full pipe never blocks the server.
        drain = threading.Thread(target=dev.stdout.read, daemon=True)
        drain.start()

        script = ["set -o pipefail"]
        runnable = [c for c in COMMANDS if key_of(c) not in NOT_RUN]
        for index, command in enumerate(runnable):
            script.append(
                f"{{\n{command.replace(README_BASE, base)}\n}} >{results}/{index}.out "
                f"2>{results}/{index}.err; echo $? >{results}/{index}.rc"
            )
        subprocess.run(["bash", "-c", "\n".join(script)], cwd=clone, env=env, check=True)
        yield {
            command: Outcome(
                int((results / f"{index}.rc").read_text()),
                (results / f"{index}.out").read_text(),
                (results / f"{index}.err").read_text(),
            )
            for index, command in enumerate(runnable)
        }
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            dev.kill()
            dev.wait()
        if drain is not None:
            drain.join()  # the pipe ends with the process
        dev.stdout.close()


def test_every_readme_command_is_run_or_says_why_not() -> None:
    assert COMMANDS, "no ```sh blocks found in the README"
    keys = [key_of(command) for command in COMMANDS]
    assert sorted(set(keys)) == sorted({*EXPECTED, *NOT_RUN}), (
        "an EXPECTED or NOT_RUN entry no longer matches a README command; remove it"
    )


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "command",
    # Not key_of here: a command without an entry fails the test above, not the collection.
    [c for c in COMMANDS if any(c.startswith(key) for key in EXPECTED)],
    ids=lambda c: c.split("\n")[0],
)
def test_readme_command_works_as_written(command: str, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[command]
    assert outcome.returncode == 0, (
        f"{command}\nexited {outcome.returncode}\n{outcome.stdout}\n{outcome.stderr}"
    )
    EXPECTED[key_of(command)](outcome.stdout, outcome.stderr)


def _inline_kcc_commands(text: str) -> list[list[str]]:
    spans = re.findall(r"`([^`\n]*\bkcc [^`\n]*)`", text)
    commands = []
    for span in spans:
        words = shlex.split(span)
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words.pop(0)  # VAR=value before the command
        if words and words[0] in ("kcc", ".venv/bin/kcc"):
            commands.append(words[1:])
    return commands


def test_inline_kcc_commands_name_real_subcommands_and_options() -> None:
    commands = _inline_kcc_commands(README.read_text(encoding="utf-8"))
    assert commands, "no inline kcc commands found"
    for words in commands:
        command: click.Command = cli
        for word in words:
            if word.startswith("-"):
                options = {name for p in command.params for name in p.opts}
                assert word.split("=")[0] in options, f"kcc {' '.join(words)}: no option {word}"
            elif isinstance(command, click.Group) and word in command.commands:
                command = command.commands[word]
        assert not isinstance(command, click.Group), f"kcc {' '.join(words)}: not a command"


def test_readme_says_which_demo_user_covers_which_department() -> None:
    readme = README.read_text(encoding="utf-8")
    departments = load_organisation().departments
    rows = {match[1]: match[0] for match in re.finditer(r"^\| `([a-z-]+)` \|.*\|$", readme, re.M)}
    assert set(rows) == {user for user, *_ in DEMO_USERS}
    for user, role, team, covered in DEMO_USERS:
        row = rows[user]
        if team is not None:
            assert f"team {team}" in row, row
        names = [name.strip() for name in row.split("|")[3].split(";")]
        if role == "staff":
            assert names == [departments[d].name for d in covered], row


# Pictures from the browser tests' screenshots (var/artefacts/browser/).
SCREENSHOTS = {"docs/img/balie.png", "docs/img/inbox.png", "docs/img/overzicht.png"}


def test_readme_links_point_to_files_in_the_project() -> None:
    readme = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert set(local) >= SCREENSHOTS
    missing = [link for link in local if not (REPO_ROOT / link).exists()]
    assert missing == []
