"""The MySQL adapter (TDSQL-C, MySQL 5.7/8.0, MariaDB): the domain's operations as SQL on the tables of
shared/storage/mysql/migrations.py, each one packet (one round trip; see connection.py).

How each guarantee is had:
- MySQL has no UPDATE ... RETURNING: a write and the read that answers it go in one packet, inside
  `START TRANSACTION ... COMMIT`, so the row read is the one written (the write's row lock is held
  until the commit).
- A condition is the WHERE of an UPDATE, or an IF() in every assignment of an INSERT ... ON DUPLICATE
  KEY UPDATE; whether it held is the statement's affected-row count. MySQL counts rows *changed*: an
  ODKU answers 1 (inserted), 2 (updated) or 0 (left as it was: the condition failed), and every
  conditional write changes a matched row (a version, a generation or a new value), so 0 always means
  "the condition did not hold". In an ODKU the assignment that a condition reads is the last one
  (MySQL assigns left to right; each IF before it still sees the old value).
- First logins: the unique key on openid and AUTO_INCREMENT. A login is an UPDATE of the known user,
  then, only if that matched nothing, an INSERT ... ON DUPLICATE KEY UPDATE: concurrent first logins of
  one openid are one insert and N-1 updates of the row it created, and the statement that inserted
  (affected 1) answers "created". A returning login takes no AUTO_INCREMENT value; a refused one, or
  one that lost a first-login race, does: ids are unique and never reused, nearly dense.
- Expiry: every read of a session, a login code or a lease compares `expires_at` with now in its WHERE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared import clock
from shared.errors import RateLimited, StorageUnavailable
from shared.settings import Settings
from shared.storage.base import (
    CODE_CLAIMED,
    CachedWeChatToken,
    CodeClaimed,
    LoginRecord,
    LoginUpsert,
    NewSession,
    ProfileChange,
    Purge,
    Rate,
    Renewal,
    Rotation,
    Session,
    Storage,
    User,
)
from shared.storage.mysql.cleanup import purge_expired
from shared.storage.mysql.connection import Bounds, Database, Result, Target
from shared.storage.mysql.migrations import migrate

# Past WeChat's expiry, a token row stays readable this long (an invalidated one must: the next refresh
# compares against it), then the cleanup may delete it. As DynamoDB's TTL slack for the same item.
TOKEN_PURGE_SLACK_S = 3600

USER_COLUMNS = (
    "id, openid, unionid, nickname, avatar, avatar_key, bio, session_key_enc, phone_enc, phone_masked,"
    " recipe_count, follower_count, following_count, favorite_count, created_at, updated_at,"
    " sessions_revoked_at"
)
SESSION_COLUMNS = (
    "sid, user_id, openid, refresh_hash, created_at_us, expires_at, prev_refresh_hash, rotated_at,"
    " generation, revoked, access_jti, prev_access_jti, access_renewed_at"
)
_SESSION_WIDTH = len(SESSION_COLUMNS.split(","))
SELECT_USER = f"SELECT {USER_COLUMNS} FROM users WHERE openid = %(openid)s"
SELECT_SESSION = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE sid = %(sid)s"
# The login bucket (GCRA, shared/storage/base.py Rate): a token is there when the theoretical arrival
# time is at most `tolerance` ahead; taking it pushes the time one interval past max(tat, now).
BUCKET_HAS_TOKEN = "(login_tat IS NULL OR login_tat <= %(limit_at)s)"
BUCKET_TAKEN = "GREATEST(COALESCE(login_tat, 0), %(now)s) + %(interval)s"


def _user(row: Sequence[Any]) -> User:
    return User(
        id=int(row[0]),
        openid=row[1],
        unionid=row[2],
        nickname=row[3],
        avatar=row[4],
        avatar_key=row[5],
        bio=row[6],
        session_key_enc=row[7],
        phone_enc=row[8],
        phone_masked=row[9],
        recipe_count=int(row[10]),
        follower_count=int(row[11]),
        following_count=int(row[12]),
        favorite_count=int(row[13]),
        created_at=row[14],
        updated_at=row[15],
        sessions_revoked_at=int(row[16]),
    )


def _session(row: Sequence[Any]) -> Session:
    return Session(
        sid=row[0],
        user_id=int(row[1]),
        openid=row[2],
        refresh_hash=row[3],
        created_at_us=int(row[4]),
        expires_at=int(row[5]),
        prev_refresh_hash=row[6],
        rotated_at=float(row[7]),
        generation=int(row[8]),
        revoked=bool(row[9]),
        access_jti=row[10],
        prev_access_jti=row[11],
        access_renewed_at=float(row[12]),
    )


def _first_user(result: Result) -> User | None:
    return _user(result.rows[0]) if result.rows else None


def _bucket(rate: Rate, now: float) -> dict[str, object]:
    now = round(now, 3)  # as the DynamoDB adapter: the same answers to the same requests
    return {"now": now, "interval": rate.interval, "limit_at": now + rate.tolerance}


class MySQLStorage(Storage):
    """The domain's storage on MySQL. Build one per process (no I/O here: the connection opens on the
    first operation and is kept); thread-safe."""

    def __init__(self, settings: Settings, *, bounds: Bounds | None = None) -> None:
        self._target = Target.from_settings(settings)
        self.db = Database(self._target, bounds or Bounds.from_settings(settings))

    def _run(
        self,
        operation: str,
        statements: Sequence[str],
        params: Mapping[str, object],
        *,
        transaction: bool = False,
        idempotent: bool = False,
    ) -> list[Result]:
        return self.db.run(operation, statements, params, transaction=transaction, idempotent=idempotent)

    # --- users -------------------------------------------------------------------------------

    def upsert_user_on_login(self, change: LoginUpsert) -> tuple[User, bool]:
        params: dict[str, object] = {
            "openid": change.openid,
            "unionid": change.unionid or None,
            "nickname": change.nickname or "",
            "avatar": change.avatar or "",
            "session_key_enc": change.session_key_enc,
            "stamp": change.stamp,
        }
        if change.rate is None:
            ok, first_tat, taken = "TRUE", "NULL", "login_tat"
        else:
            params.update(_bucket(change.rate, change.now))
            ok, first_tat, taken = BUCKET_HAS_TOKEN, "%(now)s + %(interval)s", BUCKET_TAKEN
        # A known user is one UPDATE (taking its token in the WHERE); only when it matched nothing does the
        # INSERT produce its row: a returning login takes no AUTO_INCREMENT value (an ODKU alone would,
        # every time). Its ODKU covers a first login that raced ours, or a known user being refused.
        # Statement by statement (no transaction): an UPDATE of an absent row holds a gap lock to the end
        # of its transaction, and two first logins' gap locks would deadlock each other's INSERT.
        update = f"""UPDATE users SET session_key_enc = %(session_key_enc)s, updated_at = %(stamp)s,
                unionid = COALESCE(%(unionid)s, unionid),
                nickname = IF(%(nickname)s <> '', %(nickname)s, nickname),
                avatar = IF(%(avatar)s <> '', %(avatar)s, avatar),
                version = version + 1, login_tat = {taken}
            WHERE openid = %(openid)s AND {ok}"""
        insert = f"""INSERT INTO users (openid, unionid, nickname, avatar, session_key_enc, created_at,
                updated_at, login_tat)
            SELECT %(openid)s, %(unionid)s, %(nickname)s, %(avatar)s, %(session_key_enc)s, %(stamp)s,
                %(stamp)s, {first_tat} FROM DUAL WHERE @wx_login_updated = 0
            ON DUPLICATE KEY UPDATE
                session_key_enc = IF({ok}, %(session_key_enc)s, session_key_enc),
                updated_at = IF({ok}, %(stamp)s, updated_at),
                unionid = IF({ok}, COALESCE(%(unionid)s, unionid), unionid),
                nickname = IF({ok} AND %(nickname)s <> '', %(nickname)s, nickname),
                avatar = IF({ok} AND %(avatar)s <> '', %(avatar)s, avatar),
                version = IF({ok}, version + 1, version),
                login_tat = IF({ok}, {taken}, login_tat)"""
        statements = [update, "SET @wx_login_updated = ROW_COUNT()", insert, SELECT_USER]
        updated, _, inserted, read = self._run("upsert_user_on_login", statements, params)
        user = _first_user(read)
        if user is None:  # the row we wrote or found is gone: never expected
            raise StorageUnavailable()
        if updated.affected == 0 and inserted.affected == 0 and change.rate is not None:
            # The next token is due at most one interval from now (the last one taken was due by now).
            raise RateLimited(change.rate.interval)
        return user, inserted.affected == 1

    def take_login_quota(self, openid: str, rate: Rate | None, now: float) -> User | None:
        if rate is None:
            return self.get_user(openid)
        take = f"""UPDATE users SET login_tat = {BUCKET_TAKEN}
            WHERE openid = %(openid)s AND {BUCKET_HAS_TOKEN}"""
        params = {"openid": openid, **_bucket(rate, now)}
        taken, read = self._run("take_login_quota", [take, SELECT_USER], params, transaction=True)
        user = _first_user(read)
        if user is not None and taken.affected == 0:
            raise RateLimited(rate.interval)
        return user

    def get_user(self, openid: str) -> User | None:
        (read,) = self._run("get_user", [SELECT_USER], {"openid": openid}, idempotent=True)
        return _first_user(read)

    def get_session_and_user(self, sid: str, openid: str) -> tuple[Session | None, User | None]:
        # One statement, so one consistent view of both rows (a LEFT JOIN on a one-row table keeps
        # each side even when the other is absent).
        joined = f"""SELECT {", ".join(f"s.{c.strip()}" for c in SESSION_COLUMNS.split(","))},
                {", ".join(f"u.{c.strip()}" for c in USER_COLUMNS.split(","))}
            FROM (SELECT 1 AS one) AS anchor
            LEFT JOIN sessions AS s ON s.sid = %(sid)s AND s.expires_at > %(now)s
            LEFT JOIN users AS u ON u.openid = %(openid)s"""
        params = {"sid": sid, "openid": openid, "now": clock.now()}
        (read,) = self._run("get_session_and_user", [joined], params, idempotent=True)
        row = read.rows[0]
        session = None if row[0] is None else _session(row[:_SESSION_WIDTH])
        user = None if row[_SESSION_WIDTH] is None else _user(row[_SESSION_WIDTH:])
        return session, user

    def update_profile(self, openid: str, change: ProfileChange) -> User | None:
        fields = {"nickname": change.nickname, "avatar": change.avatar, "bio": change.bio}
        given = [f"{name} = %({name})s, " for name, value in fields.items() if value is not None]
        update = f"""UPDATE users SET {"".join(given)}
                updated_at = IF(updated_at <= %(stamp)s, %(stamp)s, updated_at), version = version + 1
            WHERE openid = %(openid)s"""
        params = {"openid": openid, "stamp": change.stamp, **fields}
        written, read = self._run(
            "update_profile", [update, SELECT_USER], params, transaction=True, idempotent=True
        )
        return _first_user(read) if written.affected else None

    def bind_phone(self, openid: str, *, phone_enc: str, phone_masked: str, stamp: str) -> User | None:
        update = """UPDATE users SET phone_enc = %(phone_enc)s, phone_masked = %(phone_masked)s,
                updated_at = %(stamp)s, version = version + 1
            WHERE openid = %(openid)s"""
        params = {"openid": openid, "phone_enc": phone_enc, "phone_masked": phone_masked, "stamp": stamp}
        written, read = self._run(
            "bind_phone", [update, SELECT_USER], params, transaction=True, idempotent=True
        )
        return _first_user(read) if written.affected else None

    def set_avatar_if(self, openid: str, *, expected_key: str | None, key: str, url: str, stamp: str) -> bool:
        update = """UPDATE users SET avatar = %(url)s, avatar_key = %(key)s, updated_at = %(stamp)s,
                version = version + 1
            WHERE openid = %(openid)s AND avatar_key <=> %(expected)s"""
        params = {"openid": openid, "url": url, "key": key, "stamp": stamp, "expected": expected_key or None}
        (written,) = self._run("set_avatar_if", [update], params)
        return written.affected == 1

    def revoke_sessions_before(self, openid: str, cutoff_us: int) -> None:
        # Only forward: of two concurrent logout-alls, the earlier cutoff landing last changes nothing.
        update = """UPDATE users SET sessions_revoked_at = %(cutoff)s
            WHERE openid = %(openid)s AND sessions_revoked_at < %(cutoff)s"""
        self._run(
            "revoke_sessions_before", [update], {"openid": openid, "cutoff": cutoff_us}, idempotent=True
        )

    # --- sessions ----------------------------------------------------------------------------

    def start_session(self, session: NewSession, *, replay: LoginRecord | None = None) -> None:
        insert = """INSERT INTO sessions (sid, user_id, openid, refresh_hash, access_jti, created_at_us,
                expires_at)
            VALUES (%(sid)s, %(user_id)s, %(openid)s, %(refresh_hash)s, %(access_jti)s, %(created_at_us)s,
                %(expires_at)s)"""
        params: dict[str, object] = {
            "sid": session.sid,
            "user_id": session.user_id,
            "openid": session.openid,
            "refresh_hash": session.refresh_hash,
            "access_jti": session.access_jti,
            "created_at_us": session.created_at_us,
            "expires_at": session.expires_at,
        }
        if replay is None:
            # A sid already taken (random 128 bits: never expected) is a duplicate key: StorageUnavailable.
            self._run("start_session", [insert], params)
            return
        # Same transaction: the replay record exists only if the session does.
        record = """INSERT INTO login_codes (code_key, openid, is_new_user, expires_at)
            VALUES (%(code_key)s, %(code_openid)s, %(is_new_user)s, %(code_expires_at)s)
            ON DUPLICATE KEY UPDATE openid = %(code_openid)s, is_new_user = %(is_new_user)s,
                expires_at = %(code_expires_at)s"""
        params.update(
            code_key=replay.key,
            code_openid=replay.openid,
            is_new_user=replay.is_new_user,
            code_expires_at=replay.expires_at,
        )
        self._run("start_session", [insert, record], params, transaction=True)

    def get_session(self, sid: str) -> Session | None:
        live = f"{SELECT_SESSION} AND expires_at > %(now)s"
        (read,) = self._run("get_session", [live], {"sid": sid, "now": clock.now()}, idempotent=True)
        return _session(read.rows[0]) if read.rows else None

    def rotate_refresh_if_current(self, rotation: Rotation) -> Session | None:
        # prev_access_jti before access_jti: it takes the value being replaced.
        update = """UPDATE sessions SET refresh_hash = %(successor)s, prev_refresh_hash = %(presented)s,
                rotated_at = %(now)s, generation = generation + 1, expires_at = %(expires_at)s,
                prev_access_jti = access_jti, access_jti = %(jti)s, access_renewed_at = %(now)s,
                version = version + 1
            WHERE sid = %(sid)s AND refresh_hash = %(presented)s AND revoked = 0
                AND expires_at > %(whole_now)s"""
        params = {
            "sid": rotation.sid,
            "presented": rotation.presented_hash,
            "successor": rotation.successor_hash,
            "jti": rotation.access_jti,
            "now": rotation.now,
            "whole_now": int(rotation.now),
            "expires_at": rotation.expires_at,
        }
        written, read = self._run(
            "rotate_refresh_if_current", [update, SELECT_SESSION], params, transaction=True
        )
        return _session(read.rows[0]) if written.affected and read.rows else None

    def renew_access_if_current(self, renewal: Renewal) -> Session | None:
        update = """UPDATE sessions SET prev_access_jti = %(presented)s, access_jti = %(new)s,
                access_renewed_at = %(now)s, version = version + 1
            WHERE sid = %(sid)s AND (access_jti = %(presented)s OR access_jti IS NULL) AND revoked = 0
                AND expires_at > %(whole_now)s"""
        params = {
            "sid": renewal.sid,
            "presented": renewal.presented_jti,
            "new": renewal.new_jti,
            "now": renewal.now,
            "whole_now": int(renewal.now),
        }
        written, read = self._run(
            "renew_access_if_current", [update, SELECT_SESSION], params, transaction=True
        )
        return _session(read.rows[0]) if written.affected and read.rows else None

    def revoke_session(self, sid: str, user_id: int) -> None:
        update = """UPDATE sessions SET revoked = 1, version = version + 1
            WHERE sid = %(sid)s AND user_id = %(user_id)s"""
        self._run("revoke_session", [update], {"sid": sid, "user_id": user_id}, idempotent=True)

    # --- login codes -------------------------------------------------------------------------

    def claim_login_code(self, key: str, *, now: float, claim_until: int) -> LoginRecord | CodeClaimed | None:
        # A claim (openid NULL) or record whose expires_at has passed is free: it becomes our claim.
        claim = """INSERT INTO login_codes (code_key, openid, is_new_user, expires_at)
            VALUES (%(key)s, NULL, 0, %(until)s)
            ON DUPLICATE KEY UPDATE
                openid = IF(expires_at < %(now)s, NULL, openid),
                is_new_user = IF(expires_at < %(now)s, 0, is_new_user),
                expires_at = IF(expires_at < %(now)s, %(until)s, expires_at)"""
        read = "SELECT openid, is_new_user, expires_at FROM login_codes WHERE code_key = %(key)s"
        params = {"key": key, "now": int(now), "until": claim_until}
        written, found = self._run("claim_login_code", [claim, read], params, transaction=True)
        if written.affected or not found.rows:
            return None
        openid, is_new_user, expires_at = found.rows[0]
        if openid is None:
            return CODE_CLAIMED
        return LoginRecord(key, openid, bool(is_new_user), int(expires_at))

    def remember_login(self, record: LoginRecord) -> None:
        # Over our claim, not over a record already there (the first answer wins); openid last.
        remember = """INSERT INTO login_codes (code_key, openid, is_new_user, expires_at)
            VALUES (%(key)s, %(openid)s, %(is_new_user)s, %(expires_at)s)
            ON DUPLICATE KEY UPDATE
                is_new_user = IF(openid IS NULL, %(is_new_user)s, is_new_user),
                expires_at = IF(openid IS NULL, %(expires_at)s, expires_at),
                openid = IF(openid IS NULL, %(openid)s, openid)"""
        params = {
            "key": record.key,
            "openid": record.openid,
            "is_new_user": record.is_new_user,
            "expires_at": record.expires_at,
        }
        self._run("remember_login", [remember], params, idempotent=True)

    def release_login_code(self, key: str) -> None:
        release = "DELETE FROM login_codes WHERE code_key = %(key)s AND openid IS NULL"
        self._run("release_login_code", [release], {"key": key}, idempotent=True)

    # --- rate limits ---------------------------------------------------------------------------

    def count_rejected_code(self, bucket: str, *, window_ends: int) -> int:
        count = """INSERT INTO rate_counters (bucket, count, expires_at) VALUES (%(bucket)s, 1, %(ends)s)
            ON DUPLICATE KEY UPDATE count = count + 1, expires_at = %(ends)s"""
        read = "SELECT count FROM rate_counters WHERE bucket = %(bucket)s"
        params = {"bucket": bucket, "ends": window_ends}
        _, found = self._run("count_rejected_code", [count, read], params, transaction=True)
        return int(found.rows[0][0]) if found.rows else 0

    # --- WeChat's server access token ----------------------------------------------------------

    def read_wechat_token(self, appid: str) -> CachedWeChatToken | None:
        read = "SELECT token_enc, version, expires_at FROM wechat_tokens WHERE appid = %(appid)s"
        (found,) = self._run("read_wechat_token", [read], {"appid": appid}, idempotent=True)
        if not found.rows:
            return None
        token_enc, version, expires_at = found.rows[0]
        return CachedWeChatToken(token_enc, int(version), int(expires_at))

    def save_wechat_token_if(self, appid: str, token: CachedWeChatToken, *, expected_version: int) -> bool:
        # Absent (first token, or deleted by the cleanup) or still the version the caller read.
        save = """INSERT INTO wechat_tokens (appid, token_enc, version, expires_at, purge_at)
            VALUES (%(appid)s, %(token_enc)s, %(version)s, %(expires_at)s, %(purge_at)s)
            ON DUPLICATE KEY UPDATE
                token_enc = IF(version = %(expected)s, %(token_enc)s, token_enc),
                expires_at = IF(version = %(expected)s, %(expires_at)s, expires_at),
                purge_at = IF(version = %(expected)s, %(purge_at)s, purge_at),
                version = IF(version = %(expected)s, %(version)s, version)"""
        params = {
            "appid": appid,
            "token_enc": token.token_enc,
            "version": token.version,
            "expires_at": token.expires_at,
            "purge_at": token.expires_at + TOKEN_PURGE_SLACK_S,
            "expected": expected_version,
        }
        (written,) = self._run("save_wechat_token_if", [save], params)
        return written.affected > 0

    def invalidate_wechat_token(self, appid: str, version: int) -> bool:
        invalidate = """UPDATE wechat_tokens SET expires_at = 0
            WHERE appid = %(appid)s AND version = %(version)s AND expires_at > 0"""
        (written,) = self._run("invalidate_wechat_token", [invalidate], {"appid": appid, "version": version})
        return written.affected == 1

    def acquire_lease(self, name: str, *, holder: str, now: float, until: int) -> bool:
        acquire = """INSERT INTO leases (name, holder, expires_at) VALUES (%(name)s, %(holder)s, %(until)s)
            ON DUPLICATE KEY UPDATE
                holder = IF(expires_at < %(now)s, %(holder)s, holder),
                expires_at = IF(expires_at < %(now)s, %(until)s, expires_at)"""
        params = {"name": name, "holder": holder, "now": int(now), "until": until}
        (written,) = self._run("acquire_lease", [acquire], params)
        return written.affected > 0

    def release_lease(self, name: str, *, holder: str) -> None:
        release = "DELETE FROM leases WHERE name = %(name)s AND holder = %(holder)s"
        self._run("release_lease", [release], {"name": name, "holder": holder}, idempotent=True)

    # --- operations ----------------------------------------------------------------------------

    def purge_expired(self, *, now: float, budget_s: float) -> Purge:
        return purge_expired(self.db, now=now, budget_s=budget_s)

    def create_schema(self) -> None:
        migrate(self._target)

    def all_users_and_sessions(self) -> tuple[list[User], list[Session]]:
        """Every stored user and session (local checks only: a full read of both tables)."""
        users, sessions = self._run(
            "all_users_and_sessions",
            [f"SELECT {USER_COLUMNS} FROM users", f"SELECT {SESSION_COLUMNS} FROM sessions"],
            {},
            idempotent=True,
        )
        return [_user(row) for row in users.rows], [_session(row) for row in sessions.rows]

    def close(self) -> None:
        """Close the connection (tests; a function instance keeps its own until it ends)."""
        self.db.close()
