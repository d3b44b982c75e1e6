"""A private RabbitMQ node and a private PostgreSQL cluster for the fault-injection suite.

The faults (kill -9 of the broker, a graceful restart, a memory alarm, a database restart)
would disturb every other user of the machine's shared RabbitMQ and PostgreSQL, so the suite
runs its own: the same Debian binaries, on free ports, with their data under a temporary
folder. Both keep their data across a restart, as a production server does.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
POSTGRES_BIN_ROOT = Path("/usr/lib/postgresql")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(condition_name: str, probe: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{condition_name} not reached within {timeout:.0f} s")


def rabbitmq_available() -> bool:
    return (RABBITMQ_BIN / "rabbitmq-server").exists()


class PrivateRabbitMQ:
    """One RabbitMQ node of our own: `start`, `kill` (SIGKILL, no goodbye), `stop` (graceful),
    and a memory alarm that blocks every publisher."""

    def __init__(self, base: Path, name: str = "kccfaults", *, cookie: str | None = None) -> None:
        self.base = base
        self.node = f"{name}-{os.getpid()}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        for folder in ("mnesia", "log", "home"):
            (base / folder).mkdir(parents=True, exist_ok=True)
        # No plugins: the shared node already holds the Prometheus plugin's port (15692).
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            # A queue whose leader restarts must not be declared "down" before we restart it.
            "heartbeat = 10\n"
        )
        # An empty env file: the machine's /etc/rabbitmq/rabbitmq-env.conf names the shared node.
        (base / "rabbitmq-env.conf").write_text("")
        if cookie is not None:
            # Nodes of one cluster (and their rabbitmqctl) must share the Erlang cookie; it is
            # read from HOME, and Erlang refuses a cookie file others can read.
            cookie_file = base / "home" / ".erlang.cookie"
            cookie_file.write_text(cookie)
            cookie_file.chmod(0o400)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def vhost_url(self, vhost: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost}"

    def _env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # The Erlang cookie lives in HOME; the control commands below use the same HOME.
            "HOME": str(self.base / "home"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            # No busy-waiting schedulers: several nodes share two cores with the services.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+sbwt none +sbwtdcpu none +sbwtdio none",
        }

    def ctl(self, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, "-q", *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def start(self, timeout: float = 90) -> None:
        self.launch()
        self.wait_started(timeout)

    def launch(self) -> None:
        """Start the node's VM without waiting for it (nodes of a cluster boot side by side)."""
        assert self.process is None or self.process.poll() is not None, "already running"
        with (self.base / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(RABBITMQ_BIN / "rabbitmq-server")],
                env=self._env(),
                cwd=self.base,
                stdout=log,
                stderr=log,
                # Its own process group: kill() reaches the Erlang VM, not just the shell script.
                start_new_session=True,
            )

    def wait_started(self, timeout: float = 90) -> None:
        # await_startup gives up at once while the VM has not registered the node with epmd.
        _wait(f"RabbitMQ node {self.node} running", self._started, timeout)

    def _started(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            log = (self.base / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"RabbitMQ node exited with {self.process.returncode}:\n{log}")
        try:
            self.ctl("await_startup", "--timeout", "5", timeout=20)
        except (RuntimeError, subprocess.TimeoutExpired):
            # Not up yet; on a busy machine rabbitmqctl's own VM may take 20 s to answer.
            return False
        return True

    def add_vhost(self, vhost: str) -> str:
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return self.vhost_url(vhost)

    def persist_queue_registry(self) -> None:
        """Write the quorum-queue registry to disk now.

        RabbitMQ 3.10 keeps the registry of its quorum queues in DETS tables that it writes
        lazily. A queue declared seconds before a kill -9 of a single-node broker is then
        unknown after the restart and times out on every operation: a test artefact (real
        queues are long-lived and replicated on three nodes), so the fault tests call this
        once the services have declared their queues.
        """
        self.ctl("eval", "[dets:sync(T) || T <- dets:all()].")

    def kill(self) -> None:
        """SIGKILL the whole node: no connection is closed, nothing is flushed on the way out."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        # epmd may still list the dead node for a moment; a start before it forgets fails.
        _wait("epmd forgetting the killed node", self._unregistered, 30)

    def stop(self) -> None:
        """A graceful shutdown, as `systemctl stop rabbitmq-server` does."""
        if self.process is None or self.process.poll() is not None:
            return
        self.ctl("shutdown", timeout=120)
        self.process.wait(timeout=60)

    def restart(self) -> None:
        self.stop()
        self.start()

    def memory_alarm(self, on: bool) -> None:
        """A watermark below what the node uses raises the memory alarm: RabbitMQ blocks every
        publishing connection until it clears (consumers keep receiving)."""
        self.ctl("set_vm_memory_high_watermark", *(("absolute", "1MB") if on else ("0.4",)))

    def alarms(self) -> str:
        return self.ctl("eval", "rabbit_alarm:get_alarms().").strip()

    def _unregistered(self) -> bool:
        epmd = shutil.which("epmd") or "/usr/bin/epmd"
        names = subprocess.run(
            [epmd, "-names"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
        short = self.node.split("@", 1)[0]
        return f"name {short} " not in names

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def postgres_bin() -> Path | None:
    versions = sorted(POSTGRES_BIN_ROOT.glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


class PrivatePostgres:
    """A PostgreSQL cluster of our own (initdb under `base`), run as the `postgres` user because
    the server refuses to run as root."""

    def __init__(self, base: Path) -> None:
        binary = postgres_bin()
        if binary is None:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.bin = binary
        self.base = base
        self.data = base / "data"
        self.port = free_port()
        base.mkdir(parents=True, exist_ok=True)
        self._as_root = os.geteuid() == 0
        if self._as_root:
            account = pwd.getpwnam("postgres")
            os.chown(base, account.pw_uid, account.pw_gid)

    @property
    def _log(self) -> str:
        # Without -l the server writes to pg_ctl's stdout, a pipe that would then never close.
        return str(self.base / "server.log")

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.base
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stderr.strip() or result.stdout}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.base}'\n"
                # Six processes with pools of their own, and the tests' accounting on top.
                "max_connections = 300\n"
                # Durability as in production: fsync stays on, so a restart loses nothing
                # committed; only the checkpoint spread is shortened for quick restarts.
                "checkpoint_completion_target = 0.5\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", self._log, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """`-m fast`: every session is cut off, as in a failover or an unplanned restart."""
        self._run("pg_ctl", "-D", str(self.data), "-l", self._log, "-m", "fast", "-w", "restart")

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
