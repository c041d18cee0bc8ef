"""The MySQL schema as numbered migrations, applied in order by `python -m shared.storage.mysql.migrate`
at deploy time (never by a request), and by `MySQLStorage.create_schema()` for local servers and tests.

Safe to run twice and concurrently: a run takes the named lock `wx_login_migrate` (GET_LOCK), reads
`schema_version`, applies each missing migration and records it. MySQL commits DDL statement by
statement, so every step is written to be re-run after a crash half-way (CREATE TABLE IF NOT EXISTS;
a later ALTER checks information_schema first). A later migration (identities, an audit log) is one more
entry at the end of MIGRATIONS; a released one is never edited.

Choices:
- Text is utf8mb4 with the binary collation: an openid, a sid or a hash compares byte for byte (a
  case-insensitive collation would make two openids differing in case one user), and nicknames keep
  every emoji.
- One table per kind of short-lived record (login codes, rate counters, WeChat tokens, leases) rather
  than DynamoDB's one cache table: each has its own typed columns and its own expiry column, indexed,
  which the cleanup (shared/storage/mysql/cleanup.py) deletes by in bounded batches.
- `version` on users and sessions is bumped by every conditional UPDATE: MySQL reports the rows an
  UPDATE *changed*, so a matched row must always change for "affected = 1" to mean "the condition held".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace

from shared import clock
from shared.errors import StorageUnavailable
from shared.storage.mysql.connection import Bounds, Database, Target, error_code

logger = logging.getLogger(__name__)

LOCK_NAME = "wx_login_migrate"
LOCK_WAIT_S = 60
UNKNOWN_DATABASE = 1049
_DATABASE_NAME = re.compile(r"[A-Za-z0-9_$]{1,64}")
# A migration may wait for another one's lock and alter a big table: not a request's bounds.
MIGRATION_BOUNDS = Bounds(read_timeout_s=LOCK_WAIT_S + 600, write_timeout_s=60, lock_wait_timeout_s=50)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


_TABLE = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "users, sessions, login codes, rate counters, WeChat tokens, leases",
        (
            f"""CREATE TABLE IF NOT EXISTS users (
                id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
                openid VARCHAR(255) NOT NULL,
                unionid VARCHAR(255) NULL,
                nickname VARCHAR(255) NOT NULL DEFAULT '',
                avatar VARCHAR(2048) NOT NULL DEFAULT '',
                avatar_key VARCHAR(512) NULL,
                bio VARCHAR(1000) NOT NULL DEFAULT '',
                session_key_enc VARCHAR(512) NULL,
                phone_enc VARCHAR(1024) NULL,
                phone_masked VARCHAR(64) NOT NULL DEFAULT '',
                recipe_count BIGINT NOT NULL DEFAULT 0,
                follower_count BIGINT NOT NULL DEFAULT 0,
                following_count BIGINT NOT NULL DEFAULT 0,
                favorite_count BIGINT NOT NULL DEFAULT 0,
                created_at VARCHAR(32) NOT NULL,
                updated_at VARCHAR(32) NOT NULL DEFAULT '',
                sessions_revoked_at BIGINT NOT NULL DEFAULT 0,
                login_tat DOUBLE NULL,
                version BIGINT UNSIGNED NOT NULL DEFAULT 0,
                PRIMARY KEY (id),
                UNIQUE KEY users_openid (openid)
            ) {_TABLE}""",
            f"""CREATE TABLE IF NOT EXISTS sessions (
                sid VARCHAR(64) NOT NULL,
                user_id BIGINT UNSIGNED NOT NULL,
                openid VARCHAR(255) NOT NULL,
                refresh_hash VARCHAR(128) NOT NULL,
                prev_refresh_hash VARCHAR(128) NULL,
                rotated_at DOUBLE NOT NULL DEFAULT 0,
                generation INT UNSIGNED NOT NULL DEFAULT 0,
                created_at_us BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                revoked TINYINT(1) NOT NULL DEFAULT 0,
                access_jti VARCHAR(128) NULL,
                prev_access_jti VARCHAR(128) NULL,
                access_renewed_at DOUBLE NOT NULL DEFAULT 0,
                version BIGINT UNSIGNED NOT NULL DEFAULT 0,
                PRIMARY KEY (sid),
                KEY sessions_user (user_id, created_at_us),
                KEY sessions_expires (expires_at)
            ) {_TABLE}""",
            # A claim has no openid; a replay record has the first answer's openid and is_new_user.
            f"""CREATE TABLE IF NOT EXISTS login_codes (
                code_key VARCHAR(128) NOT NULL,
                openid VARCHAR(255) NULL,
                is_new_user TINYINT(1) NOT NULL DEFAULT 0,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (code_key),
                KEY login_codes_expires (expires_at)
            ) {_TABLE}""",
            f"""CREATE TABLE IF NOT EXISTS rate_counters (
                bucket VARCHAR(255) NOT NULL,
                count BIGINT NOT NULL DEFAULT 0,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (bucket),
                KEY rate_counters_expires (expires_at)
            ) {_TABLE}""",
            # expires_at is WeChat's (0 once rejected) and is read past its time; purge_at is when the
            # cleanup may delete the row (an invalidated token must stay readable until then).
            f"""CREATE TABLE IF NOT EXISTS wechat_tokens (
                appid VARCHAR(64) NOT NULL,
                token_enc VARCHAR(2048) NOT NULL,
                version BIGINT UNSIGNED NOT NULL,
                expires_at BIGINT NOT NULL,
                purge_at BIGINT NOT NULL,
                PRIMARY KEY (appid),
                KEY wechat_tokens_purge (purge_at)
            ) {_TABLE}""",
            f"""CREATE TABLE IF NOT EXISTS leases (
                name VARCHAR(255) NOT NULL,
                holder VARCHAR(128) NOT NULL,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (name),
                KEY leases_expires (expires_at)
            ) {_TABLE}""",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version

# Every table the migrations create, in the order a test empties them.
TABLES = ("users", "sessions", "login_codes", "rate_counters", "wechat_tokens", "leases")

SCHEMA_VERSION_TABLE = f"""CREATE TABLE IF NOT EXISTS schema_version (
    version INT NOT NULL,
    description VARCHAR(255) NOT NULL,
    applied_at VARCHAR(32) NOT NULL,
    PRIMARY KEY (version)
) {_TABLE}"""


@dataclass(frozen=True)
class MigrationRun:
    """What one run did: the versions it applied (empty when the schema was already current)."""

    applied: tuple[int, ...]
    version: int


def _lock_name(database: str) -> str:
    # GET_LOCK names are server-wide: one lock per database (at most 64 characters).
    return f"{LOCK_NAME}.{database}"[:64]


def migrate(target: Target) -> MigrationRun:
    """Bring the database of `target` to the latest schema (creating the database if it is missing and
    the user may); safe to run again and concurrently."""
    if not target.database or not _DATABASE_NAME.fullmatch(target.database):
        raise ValueError("MYSQL_DATABASE must be letters, digits, _ or $ (at most 64)")
    database = Database(target, MIGRATION_BOUNDS)
    try:
        try:
            database.connect_now("migrate")
        except StorageUnavailable as exc:
            if error_code(exc.__cause__ or exc) != UNKNOWN_DATABASE:
                raise
            _create_database(target)
        with database.exclusive("migrate") as run:
            lock = _lock_name(target.database)
            (got,) = run(["SELECT GET_LOCK(%(lock)s, %(wait)s)"], {"lock": lock, "wait": LOCK_WAIT_S})[0].rows
            if got[0] != 1:
                raise StorageUnavailable("another migration holds the lock")
            try:
                run([SCHEMA_VERSION_TABLE])
                done = {int(row[0]) for row in run(["SELECT version FROM schema_version"])[0].rows}
                applied: list[int] = []
                for migration in MIGRATIONS:
                    if migration.version in done:
                        continue
                    run(list(migration.statements))
                    record = "INSERT INTO schema_version VALUES (%(v)s, %(d)s, %(at)s)"
                    stamp = clock.iso_ms(clock.now())
                    run([record], {"v": migration.version, "d": migration.description, "at": stamp})
                    logger.info(
                        "mysql schema: applied migration %d (%s)", migration.version, migration.description
                    )
                    applied.append(migration.version)
            finally:
                run(["SELECT RELEASE_LOCK(%(lock)s)"], {"lock": lock})
        return MigrationRun(tuple(applied), max([*done, *applied], default=0))
    finally:
        database.close()


def _create_database(target: Target) -> None:
    server = Database(replace(target, database=None), MIGRATION_BOUNDS)
    try:
        with server.exclusive("migrate") as run:
            charset = "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            run([f"CREATE DATABASE IF NOT EXISTS `{target.database}` {charset}"])
        logger.info("mysql schema: created database %s", target.database)
    finally:
        server.close()
