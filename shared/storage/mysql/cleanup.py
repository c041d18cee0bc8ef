"""Deletes expired MySQL rows in bounded batches: what DynamoDB's TTL does, run by a timer function
(functions/cleanup.py). Reads never depend on it (each checks expiry itself): it only keeps tables small.

Each batch is one `DELETE ... WHERE <expiry> < ? ORDER BY <expiry> LIMIT n` on the expiry column's
index: it locks at most n rows for a few milliseconds, so requests are never held up behind it. A run
stops at `max_batches` or when its time budget is spent; the next run carries on where it stopped.
"""

from __future__ import annotations

import time

from shared.storage.base import Purge
from shared.storage.mysql.connection import Database

# A row is deleted this long after it expired: instances whose clock lags a little still read it as
# expired, never as absent-then-present.
CLOCK_SKEW_S = 60
BATCH = 500
MAX_BATCHES = 200
# (table, expiry column). A WeChat token is read past its expiry (see the adapter):
# its row goes at `purge_at`, an hour after.
EXPIRING: tuple[tuple[str, str], ...] = (
    ("sessions", "expires_at"),
    ("login_codes", "expires_at"),
    ("rate_counters", "expires_at"),
    ("wechat_tokens", "purge_at"),
    ("leases", "expires_at"),
)


def purge_expired(
    db: Database, *, now: float, budget_s: float, batch: int = BATCH, max_batches: int = MAX_BATCHES
) -> Purge:
    """Delete rows expired before `now` (less the clock skew allowance), table by table, in batches."""
    deadline = time.monotonic() + budget_s
    deleted: dict[str, int] = {}
    batches = 0
    complete = True
    before = int(now) - CLOCK_SKEW_S
    for table, column in EXPIRING:
        deleted[table] = 0
        while True:
            if batches >= max_batches or time.monotonic() >= deadline:
                complete = False
                break
            delete = f"DELETE FROM {table} WHERE {column} < %(before)s ORDER BY {column} LIMIT {int(batch)}"
            (result,) = db.run("purge_expired", [delete], {"before": before}, idempotent=True)
            batches += 1
            deleted[table] += result.affected
            if result.affected < batch:
                break
        if not complete:
            break
    return Purge(deleted, complete)
