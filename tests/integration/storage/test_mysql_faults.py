"""MySQL faults on a real MariaDB (tests/mysql_server.py), never a mock: connections killed mid-request
and while idle, the server restarted and killed, held row locks, a deadlock, unreachable servers; the
migrations run twice and concurrently; the cleanup in bounded batches."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

import pymysql
import pytest

from shared.deadline import Deadline, request_deadline
from shared.errors import StorageUnavailable
from shared.settings import Settings
from shared.storage.base import LoginRecord, NewSession, ProfileChange, Rotation
from shared.storage.mysql.adapter import MySQLStorage
from shared.storage.mysql.connection import Bounds, Target
from shared.storage.mysql.migrations import LATEST, TABLES, migrate
from tests.backend_mysql import backend
from tests.conftest import ROOT, run_python
from tests.integration.storage.test_storage_contract import NOW, login, new_session, stamp
from tests.mysql_server import DATABASE, mysql_settings, server

T = TypeVar("T")
# Small bounds: the faults answer in about a second (the defaults are in connection.Bounds).
FAST = Bounds(
    connect_timeout_s=0.5, read_timeout_s=1.5, lock_wait_timeout_s=1, budget_s=5.0, conflict_attempts=2
)


@pytest.fixture
def storage(settings: Settings) -> Iterator[MySQLStorage]:
    with backend(settings) as store:
        assert isinstance(store, MySQLStorage)
        yield store


@pytest.fixture
def fast(settings: Settings, storage: MySQLStorage) -> Iterator[MySQLStorage]:
    """A second adapter on the same (emptied) database, with FAST bounds."""
    store = MySQLStorage(mysql_settings(settings), bounds=FAST)
    yield store
    store.close()


@contextmanager
def admin(database: str | None = DATABASE) -> Iterator[Any]:
    """Another client of the server (the one that holds locks and kills connections)."""
    connection = pymysql.connect(
        host="127.0.0.1",
        port=server().port,
        user="root",
        database=database,
        autocommit=True,
        ssl_disabled=True,
    )
    try:
        yield connection.cursor()
    finally:
        connection.close()


def connection_id(store: MySQLStorage) -> int:
    (result,) = store.db.run("probe", ["SELECT CONNECTION_ID()"])
    return int(result.rows[0][0])


def in_background(call: Callable[[], T]) -> tuple[Future[T], ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    return pool.submit(call), pool


def wait_for_lock_waits(pending: Future[Any]) -> None:
    """Until `pending` waits for a row lock (its answer, if it came first, is raised)."""
    deadline = time.monotonic() + 20  # generous: the machine may be busy
    with admin() as cursor:
        while time.monotonic() < deadline:
            if pending.done():
                raise AssertionError(f"answered without waiting: {pending.result()!r}")
            cursor.execute("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'")
            if cursor.fetchone()[0] >= 1:
                return
            # InnoDB refreshes what INNODB_TRX shows only after 0.1 s without a read of it.
            time.sleep(0.15)
    raise AssertionError("no transaction is waiting for a lock")


def rotation() -> Rotation:
    return Rotation("sid-1", "hash-0", "hash-1", "jti-1", time.time(), int(time.time()) + 3600)


def live_session() -> NewSession:
    return replace(new_session(), expires_at=int(time.time()) + 3600)


# --- connections -------------------------------------------------------------------------------


def test_a_write_whose_connection_is_killed_mid_request_answers_unavailable_and_writes_nothing(
    fast: MySQLStorage,
) -> None:
    fast.start_session(live_session())
    victim = connection_id(fast)
    with admin() as holder:
        holder.execute("START TRANSACTION")
        holder.execute("SELECT * FROM sessions WHERE sid = 'sid-1' FOR UPDATE")
        pending, pool = in_background(lambda: fast.rotate_refresh_if_current(rotation()))
        wait_for_lock_waits(pending)
        with admin() as killer:
            killer.execute(f"KILL CONNECTION {victim}")
        with pytest.raises(StorageUnavailable):
            pending.result(timeout=10)  # its outcome is unknown to it: never replayed
        holder.execute("ROLLBACK")
    pool.shutdown()
    session = fast.get_session("sid-1")  # the next request reconnects
    assert session is not None and (session.refresh_hash, session.generation) == ("hash-0", 0)


def test_an_idempotent_write_killed_mid_request_is_sent_again_on_a_new_connection(fast: MySQLStorage) -> None:
    fast.upsert_user_on_login(login())
    victim = connection_id(fast)
    with admin() as holder:
        holder.execute("START TRANSACTION")
        holder.execute("SELECT * FROM users WHERE openid = 'o-alice' FOR UPDATE")
        pending, pool = in_background(
            lambda: fast.update_profile("o-alice", ProfileChange("Ally", None, None, stamp(NOW + 1)))
        )
        wait_for_lock_waits(pending)
        connects = fast.db.connects
        with admin() as killer:
            killer.execute(f"KILL CONNECTION {victim}")
        time.sleep(0.05)
        holder.execute("ROLLBACK")
        user = pending.result(timeout=10)
    pool.shutdown()
    assert user is not None and user.nickname == "Ally"
    assert fast.db.connects == connects + 1


def test_a_connection_closed_while_idle_is_replaced_before_a_write_is_sent(storage: MySQLStorage) -> None:
    storage.start_session(live_session())
    with admin() as killer:
        killer.execute(f"KILL CONNECTION {connection_id(storage)}")
    time.sleep(0.05)
    connects = storage.db.connects
    # Not idempotent, yet answered: the dead connection was seen before anything was sent on it.
    assert storage.rotate_refresh_if_current(rotation()) is not None
    assert storage.db.connects == connects + 1


def test_the_server_restarted_between_requests(storage: MySQLStorage) -> None:
    user, _ = storage.upsert_user_on_login(login())
    mariadb = server()
    mariadb.stop()
    mariadb.start()
    assert storage.get_user("o-alice") == user
    again, created = storage.upsert_user_on_login(login(now=NOW + 1))
    assert not created and again.id == user.id


def test_the_server_killed_mid_request_answers_unavailable_within_the_bound(fast: MySQLStorage) -> None:
    # A clean restart first: InnoDB writes a new system tablespace's header at its first checkpoint, and
    # a server killed before that cannot recover (only a database never shut down cleanly is at risk).
    mariadb = server()
    mariadb.stop()
    mariadb.start()
    fast.upsert_user_on_login(login())
    with admin() as holder:
        holder.execute("START TRANSACTION")
        holder.execute("SELECT * FROM users WHERE openid = 'o-alice' FOR UPDATE")
        pending, pool = in_background(lambda: fast.upsert_user_on_login(login(now=NOW + 1)))
        wait_for_lock_waits(pending)
        started = time.monotonic()
        mariadb.kill()
        with pytest.raises(StorageUnavailable):
            pending.result(timeout=10)
        assert time.monotonic() - started < FAST.budget_s
    pool.shutdown()
    mariadb.start()  # InnoDB recovers; the open transactions are rolled back
    user = fast.get_user("o-alice")
    assert user is not None and user.updated_at == stamp(NOW)


def test_an_unreachable_server_answers_unavailable_within_the_bound(settings: Settings) -> None:
    with socket.socket() as closed:  # a port nobody listens on: refused at once, retried with backoff
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    refused = MySQLStorage(replace(mysql_settings(settings), mysql_port=port), bounds=FAST)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        refused.get_user("o-alice")
    assert time.monotonic() - started < FAST.budget_s

    with socket.socket() as silent:  # accepts connections (the kernel does) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        mute = MySQLStorage(
            replace(mysql_settings(settings), mysql_port=silent.getsockname()[1]), bounds=FAST
        )
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            mute.upsert_user_on_login(login())
        elapsed = time.monotonic() - started
    assert FAST.read_timeout_s <= elapsed < FAST.budget_s


# --- locks ---------------------------------------------------------------------------------------


def test_a_held_row_lock_answers_unavailable_within_the_bound_and_writes_nothing(fast: MySQLStorage) -> None:
    fast.start_session(live_session())
    with admin() as holder:
        holder.execute("START TRANSACTION")
        holder.execute("SELECT * FROM sessions WHERE sid = 'sid-1' FOR UPDATE")
        trips = fast.db.trips["rotate_refresh_if_current"]
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            fast.rotate_refresh_if_current(rotation())
        elapsed = time.monotonic() - started
        holder.execute("ROLLBACK")
    # Each attempt waited innodb_lock_wait_timeout, then rolled back (a packet and a ROLLBACK each).
    assert FAST.conflict_attempts * FAST.lock_wait_timeout_s <= elapsed < FAST.budget_s
    assert fast.db.trips["rotate_refresh_if_current"] - trips == 2 * FAST.conflict_attempts
    session = fast.get_session("sid-1")
    assert session is not None and session.generation == 0


def patiently(call: Callable[[], T]) -> T:
    """`call` as a request with a minute to answer (the default request deadline is 9 s)."""
    with request_deadline(Deadline.after(60)):
        return call()


def test_a_deadlock_is_retried_as_a_whole_transaction(settings: Settings, storage: MySQLStorage) -> None:
    # Lock waits long enough that only the deadlock (never a lock wait timeout) ends ours, however busy
    # the machine is.
    patient = MySQLStorage(
        mysql_settings(settings), bounds=Bounds(read_timeout_s=30, lock_wait_timeout_s=20, budget_s=60)
    )
    storage = patient
    key = "k" * 64
    record = LoginRecord(key, "o-alice", True, int(time.time()) + 300)
    with admin() as rival:
        rival.execute("START TRANSACTION")
        # Heavier than ours (InnoDB rolls back the lighter transaction of a deadlock): we are the victim.
        rival.executemany(
            "INSERT INTO rate_counters (bucket, count, expires_at) VALUES (%s, 1, 0)",
            [(f"b{i}",) for i in range(50)],
        )
        rival.execute("INSERT INTO login_codes (code_key, openid, expires_at) VALUES (%s, NULL, 0)", (key,))
        # Ours inserts the session, then waits for the replay record's row...
        pending, pool = in_background(
            lambda: patiently(lambda: storage.start_session(live_session(), replay=record))
        )
        wait_for_lock_waits(pending)
        # ...which the rival holds while it now waits for the session's row: a deadlock.
        rival.execute("SELECT sid FROM sessions WHERE sid = 'sid-1' FOR UPDATE")
        assert rival.fetchall() == ()  # our first attempt was rolled back: no session
        rival.execute("ROLLBACK")
        pending.result(timeout=10)
    pool.shutdown()
    assert storage.db.trips["start_session"] >= 3  # the deadlocked packet, its ROLLBACK, the retry
    session = storage.get_session("sid-1")
    assert session is not None
    assert storage.claim_login_code(key, now=time.time(), claim_until=int(time.time()) + 10) == record
    patient.close()


# --- migrations and cleanup ----------------------------------------------------------------------


def _fresh_database(name: str) -> Target:
    with admin(None) as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name}")
    return Target("127.0.0.1", server().port, "root", "", name)


def test_migrations_are_idempotent_and_safe_to_run_concurrently() -> None:
    target = _fresh_database("wx_login_migrations")
    runs = list(ThreadPoolExecutor(max_workers=4).map(lambda _: migrate(target), range(4)))
    assert sorted(run.applied for run in runs) == [(), (), (), tuple(range(1, LATEST + 1))]
    assert {run.version for run in runs} == {LATEST}
    assert migrate(target).applied == ()
    with admin("wx_login_migrations") as cursor:
        cursor.execute("SELECT version FROM schema_version")
        assert cursor.fetchall() == tuple((v,) for v in range(1, LATEST + 1))
        cursor.execute("SHOW TABLES")
        assert {row[0] for row in cursor.fetchall()} == {*TABLES, "schema_version"}
        cursor.execute("DROP DATABASE wx_login_migrations")


def test_cleanup_deletes_only_expired_rows_in_bounded_batches(storage: MySQLStorage) -> None:
    now = int(time.time())
    old, live = now - 3600, now + 3600
    session = "INSERT INTO sessions (sid, user_id, openid, refresh_hash, created_at_us, expires_at)"
    token = "INSERT INTO wechat_tokens (appid, token_enc, version, expires_at, purge_at)"
    with admin() as cursor:
        cursor.executemany(
            f"{session} VALUES (%s, 1, 'o', 'h', 1, %s)",
            [(f"old-{i}", old) for i in range(1200)]
            + [(f"live-{i}", live) for i in range(10)]
            + [("just-expired", now - 1)],
        )
        cursor.executemany(
            "INSERT INTO login_codes (code_key, openid, expires_at) VALUES (%s, NULL, %s)",
            [("old-code", old), ("live-code", live)],
        )
        cursor.executemany(
            f"{token} VALUES (%s, 't', 1, 0, %s)", [("wx-gone", old), ("wx-invalidated-but-kept", live)]
        )
    from shared.storage.mysql.cleanup import purge_expired

    first = purge_expired(storage.db, now=now, budget_s=10, batch=500, max_batches=2)
    assert (first.deleted, first.complete) == ({"sessions": 1000}, False)
    rest = storage.purge_expired(now=now, budget_s=10)
    assert rest.complete
    assert rest.deleted == {
        "sessions": 200,
        "login_codes": 1,
        "rate_counters": 0,
        "wechat_tokens": 1,
        "leases": 0,
    }
    with admin() as cursor:
        cursor.execute("SELECT sid FROM sessions ORDER BY sid")
        # Expired a second ago: kept for the clock skew allowance.
        assert [row[0] for row in cursor.fetchall()] == [
            "just-expired",
            *sorted(f"live-{i}" for i in range(10)),
        ]
        cursor.execute("SELECT code_key FROM login_codes UNION ALL SELECT appid FROM wechat_tokens")
        assert [row[0] for row in cursor.fetchall()] == ["live-code", "wx-invalidated-but-kept"]


def test_the_cleanup_function_answers_what_it_deleted(
    storage: MySQLStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functions.cleanup

    storage.start_session(NewSession("gone", 1, "o", "h", "j", 1, int(time.time()) - 3600))
    monkeypatch.setattr(functions.cleanup, "_storage", storage)
    answer = functions.cleanup.handler(
        {"Type": "Timer", "TriggerName": "cleanup", "Time": "2026-01-01T00:00:00Z"}, None
    )
    assert answer == {
        "deleted": {"sessions": 1, "login_codes": 0, "rate_counters": 0, "wechat_tokens": 0, "leases": 0},
        "complete": True,
    }


def test_concurrent_threads_of_one_adapter_each_get_a_connection(storage: MySQLStorage) -> None:
    barrier = threading.Barrier(8)

    def one(_: int) -> int:
        barrier.wait()
        return connection_id(storage)

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(one, range(8)))
    assert len(set(ids)) >= 2  # not serialised on one connection (and none shared at once)


def test_the_migrate_command_creates_then_keeps_the_schema() -> None:
    _fresh_database("wx_login_command")
    env = {"STAGE": "dev", "STORAGE": "mysql", "MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": str(server().port)}
    env |= {"MYSQL_USER": "root", "MYSQL_DATABASE": "wx_login_command"}
    first = run_python("from shared.storage.mysql.migrate import main; raise SystemExit(main())", env)
    assert f"schema version {LATEST} (applied: 1" in first.stdout
    again = run_python("from shared.storage.mysql.migrate import main; raise SystemExit(main())", env)
    assert f"schema version {LATEST} (applied: none)" in again.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "shared.storage.mysql.migrate"],
        env={**env, "MYSQL_DATABASE": "", "PATH": os.environ.get("PATH", "")},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "MYSQL_DATABASE" in missing.stderr
    with admin(None) as cursor:
        cursor.execute("DROP DATABASE wx_login_command")


def test_the_request_deadline_stops_the_retries(fast: MySQLStorage) -> None:
    fast.start_session(live_session())
    with admin() as holder:
        holder.execute("START TRANSACTION")
        holder.execute("SELECT * FROM sessions WHERE sid = 'sid-1' FOR UPDATE")
        trips = fast.db.trips["rotate_refresh_if_current"]
        started = time.monotonic()
        with request_deadline(Deadline.after(1.5)), pytest.raises(StorageUnavailable):
            fast.rotate_refresh_if_current(rotation())
        elapsed = time.monotonic() - started
        holder.execute("ROLLBACK")
    # One lock wait, its ROLLBACK, and no second attempt: it could not have answered by the deadline.
    assert fast.db.trips["rotate_refresh_if_current"] - trips == 2
    assert FAST.lock_wait_timeout_s <= elapsed < 1.5
