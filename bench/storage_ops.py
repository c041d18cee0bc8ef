"""`python -m bench.storage_ops`: the MySQL adapter's cost on a local MariaDB (started here in a temporary
directory): p50/p95 latency and round trips of every Storage operation, the connect, and what it costs
to give a test an empty database three ways. Prints a Markdown table. About 20 s on 2 idle cores."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from local.mariadb import MariaDB
from shared.settings import load_settings
from shared.storage.base import (
    CachedWeChatToken,
    LoginRecord,
    LoginUpsert,
    NewSession,
    ProfileChange,
    Rate,
    Renewal,
    Rotation,
)
from shared.storage.mysql.adapter import MySQLStorage
from shared.storage.mysql.connection import Bounds, Database, Target
from shared.storage.mysql.migrations import TABLES, migrate

RUNS = 300


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.95) - 1] * 1000


def _timed(call: Callable[[int], object], runs: int = RUNS) -> list[float]:
    samples = []
    for i in range(runs):
        started = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - started)
    return samples


def main() -> int:
    """Start a MariaDB, measure, print, stop."""
    with tempfile.TemporaryDirectory(prefix="wx-login-bench-") as directory:
        server = MariaDB(Path(directory) / "data")
        started = time.perf_counter()
        server.start()
        print(f"MariaDB start: {(time.perf_counter() - started) * 1000:.0f} ms")
        try:
            return _measure(server.port)
        finally:
            server.stop()


def _measure(port: int) -> int:
    settings = load_settings({"STAGE": "local", "STORAGE": "mysql", "MYSQL_PORT": str(port)})
    target = Target.from_settings(settings)
    migrate(target)
    storage = MySQLStorage(settings)
    now = time.time()
    rate = Rate(1_000_000, 60)
    stamp = "2026-01-01T00:00:00.000Z"

    def login(i: int) -> LoginUpsert:
        return LoginUpsert(f"o-{i}", "enc", None, "nick", None, stamp, now + i, rate)

    storage.upsert_user_on_login(login(0))
    for i in range(RUNS):
        storage.start_session(NewSession(f"sid-{i}", 1, "o-0", "h-0", "j-0", 1, int(now) + 3600))
    operations: dict[str, Callable[[int], object]] = {
        "upsert_user_on_login (new user)": lambda i: storage.upsert_user_on_login(login(1_000 + i)),
        "upsert_user_on_login (known user)": lambda i: storage.upsert_user_on_login(login(0)),
        "take_login_quota": lambda i: storage.take_login_quota("o-0", rate, now),
        "get_user": lambda i: storage.get_user("o-0"),
        "get_session_and_user": lambda i: storage.get_session_and_user(f"sid-{i}", "o-0"),
        "update_profile": lambda i: storage.update_profile("o-0", ProfileChange("n", None, "b", stamp)),
        "start_session (+ replay record)": lambda i: storage.start_session(
            NewSession(f"new-{i}", 1, "o-0", "h", "j", 1, int(now) + 3600),
            replay=LoginRecord(f"k-{i}", "o-0", False, int(now) + 300),
        ),
        "get_session": lambda i: storage.get_session(f"sid-{i}"),
        "rotate_refresh_if_current": lambda i: storage.rotate_refresh_if_current(
            Rotation(f"sid-{i}", "h-0", "h-1", "j-1", now, int(now) + 3600)
        ),
        "renew_access_if_current": lambda i: storage.renew_access_if_current(
            Renewal(f"sid-{i}", "j-1", "j-2", now)
        ),
        "revoke_session": lambda i: storage.revoke_session(f"sid-{i}", 1),
        "claim_login_code": lambda i: storage.claim_login_code(f"c-{i}", now=now, claim_until=int(now) + 10),
        "count_rejected_code": lambda i: storage.count_rejected_code("ip#1", window_ends=int(now) + 60),
        "read_wechat_token": lambda i: storage.read_wechat_token("wx"),
        "save_wechat_token_if": lambda i: storage.save_wechat_token_if(
            "wx", CachedWeChatToken("t", i + 1, int(now)), expected_version=i
        ),
        "acquire_lease": lambda i: storage.acquire_lease(f"l-{i}", holder="a", now=now, until=int(now) + 1),
    }
    print(f"\n| operation ({RUNS} each) | p50 ms | p95 ms | round trips |\n|---|---|---|---|")
    for name, operation in operations.items():
        before = sum(storage.db.trips.values())
        p50, p95 = _percentiles(_timed(operation))
        trips = (sum(storage.db.trips.values()) - before) / RUNS
        print(f"| {name} | {p50:.2f} | {p95:.2f} | {trips:g} |")

    bounds = Bounds.from_settings(settings)

    def connect(_: int) -> None:
        fresh = Database(target, bounds)
        fresh.connect_now("connect")
        fresh.close()

    p50, p95 = _percentiles(_timed(connect, 100))
    print(f"\nconnect (TCP, greeting, login, SET NAMES): p50 {p50:.2f} ms, p95 {p95:.2f} ms")

    emptying: dict[str, Callable[[int], object]] = {
        "DELETE FROM every table (one packet)": lambda i: storage.db.run(
            "reset",
            [f"DELETE FROM {t}" for t in TABLES],  # noqa: S608 (our table names)
        ),
        "TRUNCATE every table (one packet)": lambda i: storage.db.run(
            "reset", [f"TRUNCATE {t}" for t in TABLES]
        ),
        "a new database, migrated": lambda i: migrate(
            Target("127.0.0.1", target.port, "root", "", f"fresh_{i}")
        ),
    }
    print("\n| an empty database per test | p50 ms |\n|---|---|")
    for name, empty in emptying.items():
        p50, _ = _percentiles(_timed(empty, 20))
        print(f"| {name} | {p50:.1f} |")
    storage.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
