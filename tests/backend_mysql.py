"""The MySQL backend of the storage tests (see tests/backends.py): a real MariaDB (tests/mysql_server.py),
migrated once per test process and emptied before each test."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from shared.settings import Settings, get_settings
from shared.storage.base import Storage
from shared.storage.mysql.adapter import MySQLStorage
from shared.storage.mysql.migrations import TABLES
from tests.mysql_server import mysql_settings

_migrated: set[int] = set()


@contextmanager
def backend(settings: Settings) -> Iterator[Storage]:
    """A MySQLStorage on an empty, migrated database, its connection already open."""
    storage = MySQLStorage(mysql_settings(settings))
    try:
        if settings_port(storage) not in _migrated:
            storage.create_schema()
            _migrated.add(settings_port(storage))
        # DELETE, not TRUNCATE or a new database: one packet on tables of a few rows (about 1 ms). User
        # ids start at 1 again, as in a new database (an ALTER, about 40 ms: only after users were made).
        deleted = storage.db.run("reset", [f"DELETE FROM {table}" for table in TABLES])
        if deleted[TABLES.index("users")].affected:
            storage.db.run("reset", ["ALTER TABLE users AUTO_INCREMENT = 1"])
        yield storage
    finally:
        storage.close()


def settings_port(storage: MySQLStorage) -> int:
    return storage.db.target.port


@contextmanager
def round_trips(storage: Storage) -> Iterator[Counter[str]]:
    """Operation name -> packets sent to MySQL while the block runs (a connect counts as "connect")."""
    assert isinstance(storage, MySQLStorage)
    before = Counter(storage.db.trips)
    counts: Counter[str] = Counter()
    yield counts
    counts.update(storage.db.trips - before)


def sibling(storage: Storage) -> Storage:
    """Another adapter on the same database, with its own connection (another function instance)."""
    assert isinstance(storage, MySQLStorage)
    return MySQLStorage(mysql_settings(get_settings()))
