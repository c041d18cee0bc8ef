"""A MariaDB server as a plain process: Debian's `mariadbd` on 127.0.0.1, its data in a directory of ours.

Used by the tests (tests/mysql_server.py: a throw-away server per test process) and by
`make dev STORAGE=mysql` (`python -m local.mariadb start DIR`: a server kept running, data kept across
restarts). No install step, no grant tables: the server listens on loopback only and accepts any user
(`--skip-grant-tables`), which is what a local test database needs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

START_TIMEOUT_S = 30.0
PR_SET_PDEATHSIG = 1


def find_mariadbd() -> str | None:
    """The server binary, or None when mariadb-server is not installed."""
    return shutil.which("mariadbd") or next(
        (path for path in ("/usr/sbin/mariadbd", "/usr/sbin/mysqld") if os.access(path, os.X_OK)), None
    )


def free_port() -> int:
    """A port nothing listens on now (the server binds it a moment later; a clash is retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover (runs in the child, before exec)
    # If the test process is killed (not only when it exits), the kernel kills the server too. The
    # kernel watches the *thread* that started it: start() from the main thread (as the tests do).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class MariaDB:
    """One mariadbd with its data in `datadir`, on 127.0.0.1:`port`."""

    def __init__(self, datadir: Path, *, port: int | None = None, durable: bool = False) -> None:
        binary = find_mariadbd()
        if binary is None:
            raise FileNotFoundError("mariadbd not found: apt-get install mariadb-server")
        self.binary = binary
        self.datadir = datadir
        self.port = port or free_port()
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.datadir / "error.log"

    def _command(self) -> list[str]:
        command = [
            self.binary,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.datadir / 'mysqld.sock'}",
            f"--pid-file={self.datadir / 'mysqld.pid'}",
            f"--log-error={self.log}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--skip-grant-tables",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            "--max-connections=500",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_bin",
        ]
        if not self.durable:
            # Test data: no fsync per commit (the log is still written at each commit, so a killed
            # server recovers everything; an OS crash would lose the last second of a throw-away database).
            command += ["--innodb-flush-log-at-trx-commit=2", "--innodb-doublewrite=0"]
        if os.geteuid() == 0:
            command.append("--user=root")  # mariadbd refuses to run as root unless told so
        return command

    def start(self, *, die_with_parent: bool = True) -> None:
        """Start the server and wait until it answers (a port clash picks another port)."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("mariadbd is already running")
        self.datadir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self.log.unlink(missing_ok=True)
            self.process = subprocess.Popen(  # noqa: S603 (our own command line)
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if die_with_parent else None,
                start_new_session=not die_with_parent,
            )
            if self._wait_ready():
                return
            self.stop()
            if "Address already in use" not in self._log_text() or attempt == 2:
                break
            self.port = free_port()
        raise RuntimeError(f"mariadbd did not start:\n{self._log_text()[-2000:]}")

    def _log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            if self.answers():
                return True
            time.sleep(0.02)
        return False

    def answers(self) -> bool:
        """Whether the server greets a client now (a MySQL handshake: protocol version 10)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as client:
                header = client.recv(5)
        except OSError:
            return False
        return len(header) == 5 and header[4] == 10

    def stop(self) -> None:
        """Stop the server (SIGTERM: a clean shutdown), killing it if it does not stop in time."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Kill the server at once (SIGKILL: a crash)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def _pid_alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def main(argv: list[str]) -> int:
    """`python -m local.mariadb start DIR PORT`: a server for `make dev`, left running (data in DIR)."""
    if len(argv) != 3 or argv[0] != "start":
        print("usage: python -m local.mariadb start DATADIR PORT", file=sys.stderr)
        return 2
    datadir, port = Path(argv[1]).resolve(), int(argv[2])
    if _pid_alive(datadir / "mysqld.pid") is not None:
        print(f"MariaDB already running (data in {datadir}, port {port})")
        return 0
    server = MariaDB(datadir, port=port, durable=True)
    server.start(die_with_parent=False)
    print(f"MariaDB started on 127.0.0.1:{server.port} (data in {datadir}; stop: make dev-mysql-stop)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
