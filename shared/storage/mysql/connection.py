"""The MySQL connection of one function instance: opened lazily, reused across requests, re-opened when
the server closed it, every wait bounded so that a request answers within the contract's 10 s.

One operation of the adapter is one *packet*: its statements joined into one COM_QUERY (the connection
is opened with CLIENT.MULTI_STATEMENTS; every value is escaped by PyMySQL), sent in one round trip, its
result sets read in order. A packet that writes more than once is `START TRANSACTION; ...; COMMIT`, so
a failure anywhere in it leaves nothing written (the transaction is rolled back before the connection
is used again).

Failures and what is retried (all within `Bounds.budget_s`):
- connecting refused or timed out (a TDSQL-C Serverless database waking from auto-pause refuses or holds
  connections for a few seconds): tried again with backoff while a whole attempt still fits the budget;
- a deadlock (1213) or lock wait timeout (1205): the whole packet again, `Bounds.conflict_attempts` in all;
- the connection lost: re-opened, and the packet sent again once, only when that is safe: the packet
  never left (PyMySQL's 2006 is raised by its write, the server's 4031 answers an idle-closed
  connection), or the operation is idempotent. A write whose answer was lost is never replayed: its
  outcome is unknown, so it answers StorageUnavailable;
- anything else (a duplicate key, a missing table): StorageUnavailable at once.
Errors are logged by code only: MySQL's messages can quote the values (a key, a hash) of the statement.
"""

from __future__ import annotations

import contextlib
import logging
import random
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysql.constants import CLIENT

from shared.deadline import current as current_deadline
from shared.errors import StorageUnavailable
from shared.settings import Settings

logger = logging.getLogger(__name__)

# MySQL's (and MariaDB's) codes for a connection that is gone or never came.
CANT_CONNECT = 2003
SERVER_GONE = 2006  # PyMySQL: the request could not be written (nothing reached the server)
SERVER_LOST = 2013  # PyMySQL: the answer could not be read (the request may have been applied)
SERVER_LOST_EXTENDED = 2055
IDLE_DISCONNECT = 4031  # MySQL 8.0.24+: "disconnected by the server because of inactivity" (before our query)
CONNECTION_KILLED = 1927  # MariaDB: KILL CONNECTION while a statement ran
SHUTDOWN_IN_PROGRESS = 1053
LOST = frozenset({SERVER_GONE, SERVER_LOST, SERVER_LOST_EXTENDED, IDLE_DISCONNECT, CONNECTION_KILLED})
# Codes whose packet certainly did not run: safe to send again on a new connection.
NOT_SENT = frozenset({SERVER_GONE, IDLE_DISCONNECT})
DEADLOCK = 1213
LOCK_WAIT_TIMEOUT = 1205
CONFLICT = frozenset({DEADLOCK, LOCK_WAIT_TIMEOUT})
# A wrong password, user or database does not get better by waiting.
ACCESS_DENIED = frozenset({1044, 1045, 1049, 1698})


@dataclass(frozen=True)
class Bounds:
    """Every time bound of the MySQL adapter, in one place (the request's deadline, shared/deadline.py,
    narrows `budget_s` when it is sooner). An attempt (a connect, a packet) starts only if its worst
    case still ends within `budget_s` of the operation's start (the first one always starts), so no
    operation blocks much longer than that. With the defaults: a
    server that refuses answers StorageUnavailable after the wake backoff that fits (about 3.4 s), one
    that never answers after one connect attempt (5 s), a held row lock after 3 lock waits (about 3 s)."""

    connect_timeout_s: float = 3.0  # the TCP connect (MYSQL_CONNECT_TIMEOUT_S)
    read_timeout_s: float = 2.0  # each answer, and the server's greeting (MYSQL_READ_TIMEOUT_S)
    write_timeout_s: float = 2.0
    # innodb_lock_wait_timeout of our session (whole seconds): our transactions hold a row for
    # microseconds, so a lock held this long belongs to something stuck.
    lock_wait_timeout_s: int = 1
    budget_s: float = 9.0  # one operation: connects, waits and retries together
    wake_backoff_s: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 1.5)
    conflict_attempts: int = 3
    conflict_backoff_s: float = 0.02  # times the attempt number, plus jitter

    def __post_init__(self) -> None:
        # A lock wait must end (1205: rolled back, retried) before the client stops reading, or the
        # wait would read as a lost connection, whose write is never retried.
        if self.read_timeout_s <= self.lock_wait_timeout_s:
            raise ValueError("read_timeout_s must exceed lock_wait_timeout_s")

    @classmethod
    def from_settings(cls, settings: Settings) -> Bounds:
        """The defaults, with the timeouts the settings name."""
        timeout = settings.mysql_read_timeout_s
        return cls(
            connect_timeout_s=settings.mysql_connect_timeout_s,
            read_timeout_s=timeout,
            write_timeout_s=timeout,
        )

    @property
    def connect_attempt_s(self) -> float:
        """The longest one connect attempt can block: TCP connect, then the greeting and the login."""
        return self.connect_timeout_s + self.read_timeout_s


@dataclass(frozen=True)
class Target:
    """Where the database is (from settings); `database` None connects to the server only."""

    host: str
    port: int
    user: str
    password: str
    database: str | None

    def __repr__(self) -> str:  # never the password
        return f"Target({self.user}@{self.host}:{self.port}/{self.database})"

    @classmethod
    def from_settings(cls, settings: Settings) -> Target:
        return cls(
            host=settings.mysql_host,
            port=settings.mysql_port,
            user=settings.mysql_user,
            password=settings.mysql_password,
            database=settings.mysql_database or None,
        )


@dataclass(frozen=True)
class Result:
    """One statement's answer: rows changed (MySQL counts changed rows, not matched ones) and rows read."""

    affected: int
    rows: tuple[tuple[Any, ...], ...]


def error_code(exc: BaseException) -> int:
    """The MySQL error code of a PyMySQL exception (0 when it has none)."""
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0


class _Connection:
    """One PyMySQL connection and the socket under it (watched for a close by the server)."""

    def __init__(self, target: Target, bounds: Bounds) -> None:
        sock = socket.create_connection((target.host, target.port), timeout=bounds.connect_timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            self.conn: pymysql.Connection[Any] = pymysql.Connection(
                host=target.host,
                port=target.port,
                user=target.user,
                password=target.password,
                database=target.database,
                charset="utf8mb4",
                collation="utf8mb4_bin",
                client_flag=CLIENT.MULTI_STATEMENTS,
                autocommit=True,
                # No TLS: the database is in the functions' VPC, and PyMySQL's default ("preferred" TLS,
                # unverified) would load the system's CA store on every connect (~50 ms of cold start)
                # to authenticate nobody.
                ssl_disabled=True,
                connect_timeout=bounds.connect_timeout_s,
                read_timeout=bounds.read_timeout_s,
                write_timeout=bounds.write_timeout_s,
                defer_connect=True,
            )
            self.conn.connect(sock)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        # The session's settings ride in front of the first packet instead of costing a round trip.
        self.setup: str | None = (
            f"SET SESSION innodb_lock_wait_timeout = {int(bounds.lock_wait_timeout_s)},"
            " SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', SESSION time_zone = '+00:00'"
        )

    def closed_by_server(self) -> bool:
        """True when the server has closed (or written to) this idle connection: readable before we
        asked anything means an EOF or an unsolicited error packet (MySQL 8's 4031)."""
        try:
            poller = select.poll()  # not select(): it fails on descriptors past 1024
            poller.register(self.sock, select.POLLIN | select.POLLERR | select.POLLHUP)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def execute(self, statements: Sequence[str], params: Mapping[str, object] | None) -> list[Result]:
        """Send the statements as one packet and read every result set (the first error raises)."""
        sql = ";\n".join(statements)
        skip = 0
        if self.setup is not None:
            sql, skip = f"{self.setup};\n{sql}", 1
        cursor = self.conn.cursor()
        # PyMySQL formats only when given arguments: without them a literal % stays as written.
        cursor.execute(sql, dict(params) if params is not None else None)
        results = [Result(max(cursor.rowcount, 0), tuple(cursor.fetchall()))]
        self.setup = None  # the SET was the first statement: it succeeded
        while cursor.nextset():
            results.append(Result(max(cursor.rowcount, 0), tuple(cursor.fetchall())))
        return results[skip:]

    def close(self) -> None:
        # Already closed or broken: the socket goes below either way.
        with contextlib.suppress(Exception):
            self.conn.close()
        self.sock.close()


class Database:
    """The connections of one adapter: one per concurrent caller (one per function instance on SCF,
    which sends one request at a time), kept open between requests. Thread-safe.

    `trips` counts the packets sent per operation name (tests pin them); `connects` the connections opened.
    """

    def __init__(self, target: Target, bounds: Bounds) -> None:
        self.target = target
        self.bounds = bounds
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self.trips: Counter[str] = Counter()
        self.connects = 0

    def run(
        self,
        operation: str,
        statements: Sequence[str],
        params: Mapping[str, object] | None = None,
        *,
        transaction: bool = False,
        idempotent: bool = False,
    ) -> list[Result]:
        """One packet of `statements` (in a transaction when `transaction`); answers their results.

        StorageUnavailable when the database cannot answer within the bounds (see the module docstring).
        """
        packet = ["START TRANSACTION", *statements, "COMMIT"] if transaction else list(statements)
        # The request's deadline (shared/deadline.py) when it is sooner than our own budget: no retry or
        # reconnect starts that could not answer before the request must.
        deadline = min(time.monotonic() + self.bounds.budget_s, current_deadline().at)
        conflicts = 0
        resent = False
        while True:
            connection = self._checkout(operation, deadline)
            try:
                with self._lock:
                    self.trips[operation] += 1
                results = connection.execute(packet, params)
            except pymysql.MySQLError as exc:
                code = error_code(exc)
                if code in CONFLICT:
                    conflicts += 1
                    if not self._rolled_back(operation, connection, transaction):
                        raise StorageUnavailable() from exc
                    self._checkin(connection)
                    wait = self.bounds.conflict_backoff_s * conflicts * (1 + random.random())  # noqa: S311
                    if conflicts >= self.bounds.conflict_attempts or not self._fits(deadline, wait):
                        logger.warning(
                            "mysql %s: error %d, giving up after %d attempts", operation, code, conflicts
                        )
                        raise StorageUnavailable() from exc
                    logger.info("mysql %s: error %d, attempt %d: trying again", operation, code, conflicts)
                    time.sleep(wait)
                    continue
                connection.close()
                again = self.bounds.connect_attempt_s
                if (
                    code in LOST
                    and not resent
                    and (code in NOT_SENT or idempotent)
                    and self._fits(deadline, again)
                ):
                    logger.info("mysql %s: connection lost (%d), sending again on a new one", operation, code)
                    resent = True
                    continue
                logger.warning("mysql %s: error %d (%s)", operation, code, type(exc).__name__)
                raise StorageUnavailable() from exc
            except BaseException:
                connection.close()
                raise
            self._checkin(connection)
            return results[1:-1] if transaction else results

    def _fits(self, deadline: float, before_s: float) -> bool:
        """Whether a packet sent after `before_s` more seconds still answers, at worst, by `deadline`."""
        worst = max(self.bounds.read_timeout_s, self.bounds.lock_wait_timeout_s)
        return time.monotonic() + before_s + worst <= deadline

    def _rolled_back(self, operation: str, connection: _Connection, transaction: bool) -> bool:
        """Roll back what a failed transaction packet left open; False (connection dropped) if that fails.

        A lock wait timeout rolls back only its statement: without this, the next START TRANSACTION
        would commit the statements before it.
        """
        if not transaction:
            return True
        try:
            with self._lock:
                self.trips[operation] += 1
            connection.execute(["ROLLBACK"], None)
        except Exception:
            connection.close()
            return False
        return True

    def _checkout(self, operation: str, deadline: float) -> _Connection:
        while True:
            with self._lock:
                if not self._idle:
                    break
                connection = self._idle.pop()
            if not connection.closed_by_server():
                return connection
            connection.close()  # closed while idle (wait_timeout, a restart, an auto-pause)
        return self._connect(operation, deadline)

    def _checkin(self, connection: _Connection) -> None:
        with self._lock:
            self._idle.append(connection)

    def _connect(self, operation: str, deadline: float) -> _Connection:
        backoff = iter(self.bounds.wake_backoff_s)
        while True:
            try:
                connection = _Connection(self.target, self.bounds)
            except (pymysql.MySQLError, OSError) as exc:
                code = error_code(exc) if isinstance(exc, pymysql.MySQLError) else CANT_CONNECT
                wait = next(backoff, None)
                again = wait is not None and self._fits(deadline, wait + self.bounds.connect_attempt_s)
                if code in ACCESS_DENIED or not again:
                    logger.warning("mysql %s: cannot connect (%d, %s)", operation, code, type(exc).__name__)
                    raise StorageUnavailable() from exc
                time.sleep(wait or 0)
                continue
            with self._lock:
                self.connects += 1
                self.trips["connect"] += 1
            return connection

    def connect_now(self, operation: str) -> None:
        """Open a connection now if none is idle (a cold start can pay the connect before a request)."""
        self._checkin(self._checkout(operation, time.monotonic() + self.bounds.budget_s))

    @contextmanager
    def exclusive(self, operation: str) -> Iterator[Callable[..., list[Result]]]:
        """One connection for a sequence of packets that must share it (a GET_LOCK holder): no retry,
        any MySQL error is StorageUnavailable and drops the connection."""
        connection = self._checkout(operation, time.monotonic() + self.bounds.budget_s)

        def run(statements: Sequence[str], params: Mapping[str, object] | None = None) -> list[Result]:
            with self._lock:
                self.trips[operation] += 1
            return connection.execute(statements, params)

        try:
            yield run
        except pymysql.MySQLError as exc:
            connection.close()
            logger.warning("mysql %s: error %d (%s)", operation, error_code(exc), type(exc).__name__)
            raise StorageUnavailable() from exc
        except BaseException:
            connection.close()
            raise
        self._checkin(connection)

    def close(self) -> None:
        """Close every idle connection (tests, and the end of a migration run)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
