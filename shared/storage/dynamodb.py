"""The DynamoDB adapter: the domain's operations as PynamoDB requests on three tables.

Tables and keys (what the previous release wrote is read as is: an upgrade in place):
- USERS_TABLE, hash key `openid`: one item per user; `login_tat` is the per-openid login bucket (GCRA).
  The item `#counter#user_id` (no openid starts with `#`) holds the last user id handed out.
- SESSIONS_TABLE, hash key `sid`: one item per session (hashes of its refresh tokens, the jti of its
  latest access token).
- CACHE_TABLE, hash key `pk`: `login#<sha256(code)>` (claims and replay records of login codes),
  `rate#ip#<ip>#<window>` (rejected codes per IP), `wxtoken#<appid>` (WeChat's server access_token,
  ciphertext) and `wxtoken#<appid>#lease` (who refreshes it).
Every item that expires carries `ttl` (DynamoDB's TTL deletes it some time later); reads check
`expires_at` themselves.

The PynamoDB models are built from settings when the adapter is (one set of classes per table
configuration), never at import. One botocore client serves every table (see `_SharedClientModel`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar, cast

from botocore.exceptions import BotoCoreError
from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.connection import TableConnection
from pynamodb.exceptions import PynamoDBException
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactGet, TransactWrite

from shared import clock
from shared.aws import botocore_session
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
    Rate,
    Renewal,
    Rotation,
    Session,
    Storage,
    User,
)

USER_ID_COUNTER_KEY = "#counter#user_id"
# Ids reserved per adapter instance with one ADD on the counter item: a first login costs no write of
# its own on a shared item (the counter takes one write per ID_BLOCK new users, not one per user).
ID_BLOCK = 100
# How long after `expires_at` DynamoDB's TTL may delete an item (until then `expires_at` is what counts).
SESSION_TTL_SLACK_S = 86400
REPLAY_TTL_SLACK_S = 3600
RATE_TTL_SLACK_S = 600
TOKEN_TTL_SLACK_S = 3600
# A claim of a code that vanished under us (released) is tried again at once, this many times in all.
CLAIM_ATTEMPTS = 3

# One botocore client per (region, endpoint) for every table. PynamoDB gives each model class its own
# client on its own botocore session, and each costs ~40 ms of cold start (the service model and
# endpoint rules loaded again): a login touching three tables paid it three times. The client is
# created on the process's shared session (shared/aws.py), which the S3 and SSM clients use too.
_clients: dict[tuple[str, str | None], Any] = {}


class _SharedClientModel(Model):
    @classmethod
    def _get_connection(cls) -> TableConnection:
        table = super()._get_connection()
        connection = table.connection
        if connection._client is None:
            key = (connection.region, connection.host)
            with botocore_session() as session:
                if key not in _clients:
                    # PynamoDB creates its client (its config, its hooks) on this thread's session.
                    connection._local.session = session
                    _clients[key] = connection.client
            connection._client = _clients[key]
        return table


# The item layouts. Each table configuration gets subclasses of these with their own `Meta`.


class UserItem(_SharedClientModel):
    """A mini-program user, keyed by openid. `session_key_enc` and `phone_enc` are ciphertext."""

    openid = UnicodeAttribute(hash_key=True)
    id = NumberAttribute(null=True)
    unionid = UnicodeAttribute(null=True)
    nickname = UnicodeAttribute(default="")
    avatar = UnicodeAttribute(default="")
    avatar_key = UnicodeAttribute(null=True)
    bio = UnicodeAttribute(default="")
    session_key_enc = UnicodeAttribute(null=True)
    phone_enc = UnicodeAttribute(null=True)
    phone_masked = UnicodeAttribute(null=True)
    recipe_count = NumberAttribute(default=0)
    follower_count = NumberAttribute(default=0)
    following_count = NumberAttribute(default=0)
    favorite_count = NumberAttribute(default=0)
    created_at = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute(null=True)
    sessions_revoked_at = NumberAttribute(default=0)
    login_tat = NumberAttribute(null=True)


class CounterItem(_SharedClientModel):
    """An atomic counter in the users table, under a key no openid can take."""

    openid = UnicodeAttribute(hash_key=True)
    value = NumberAttribute(default=0)


class SessionItem(_SharedClientModel):
    """One session. Items of the previous release have no `access_jti` (nor its grace fields)."""

    sid = UnicodeAttribute(hash_key=True)
    user_id = NumberAttribute()
    openid = UnicodeAttribute()
    refresh_hash = UnicodeAttribute()
    prev_refresh_hash = UnicodeAttribute(null=True)
    rotated_at = NumberAttribute(default=0)
    generation = NumberAttribute(default=0)
    created_at_us = NumberAttribute()
    expires_at = NumberAttribute()
    revoked = BooleanAttribute(default=False)
    access_jti = UnicodeAttribute(null=True)
    # "" when the rotation that set `access_jti` replaced none (DynamoDB cannot SET an absent value).
    prev_access_jti = UnicodeAttribute(null=True)
    access_renewed_at = NumberAttribute(null=True)
    ttl = NumberAttribute()


class CacheItem(_SharedClientModel):
    """Short-lived shared state, expired by TTL (see the module docstring for the keys)."""

    pk = UnicodeAttribute(hash_key=True)
    data = UnicodeAttribute(null=True)
    counter = NumberAttribute(null=True)
    version = NumberAttribute(default=0)
    expires_at = NumberAttribute(default=0)
    ttl = NumberAttribute(null=True)


M = TypeVar("M", bound=Model)


def _bind(base: type[M], table: str, aws_region: str, endpoint: str | None) -> type[M]:
    class Meta:
        table_name = table
        region = aws_region
        host = endpoint
        # Bounded so a failing DynamoDB answers STORAGE_UNAVAILABLE well within 10 s
        # (the SDK defaults are 15 s connect and 30 s read).
        connect_timeout_seconds = 1
        read_timeout_seconds = 2
        max_retry_attempts = 2
        billing_mode = "PAY_PER_REQUEST"

    return cast("type[M]", type(base.__name__, (base,), {"Meta": Meta, "__module__": __name__}))


@dataclass(frozen=True)
class _Tables:
    users: type[UserItem]
    counters: type[CounterItem]
    sessions: type[SessionItem]
    cache: type[CacheItem]


@lru_cache(maxsize=8)
def _tables(users: str, sessions: str, cache: str, region: str, host: str | None) -> _Tables:
    """The models of one table configuration, built once per process."""
    return _Tables(
        users=_bind(UserItem, users, region, host),
        counters=_bind(CounterItem, users, region, host),
        sessions=_bind(SessionItem, sessions, region, host),
        cache=_bind(CacheItem, cache, region, host),
    )


def _is_condition_failure(exc: PynamoDBException) -> bool:
    # Not exc.cause_response_code: it fails on botocore errors whose `response` is None (timeouts).
    response = getattr(exc.cause, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code == "ConditionalCheckFailedException"


class _ConditionFailed(Exception):
    pass


@contextmanager
def _storage_errors() -> Iterator[None]:
    """Condition failures become _ConditionFailed; anything else DynamoDB or botocore raises (throttled
    after the SDK's retries, timed out, unreachable) becomes StorageUnavailable."""
    try:
        yield
    except PynamoDBException as exc:
        if _is_condition_failure(exc):
            raise _ConditionFailed() from exc
        raise StorageUnavailable() from exc
    except BotoCoreError as exc:
        raise StorageUnavailable() from exc


def _write_if(write: Callable[[], object]) -> bool:
    """Run one conditional write: False when its condition did not hold (nothing written)."""
    try:
        with _storage_errors():
            write()
    except _ConditionFailed:
        return False
    return True


def _get(model: type[M], key: str) -> M | None:
    with _storage_errors():
        try:
            return model.get(key, consistent_read=True)
        except model.DoesNotExist:
            return None


class _IdBlock:
    """User ids reserved by this adapter instance: handed out one at a time, given back when unused.

    An id is only given back when it is known not to be stored (the write that would have stored it
    did not happen, or stored another id); after a failure of unknown outcome it is dropped.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[int] = []
        self._next = 1
        self._end = 0

    def take(self) -> int | None:
        with self._lock:
            if self._free:
                return self._free.pop()
            if self._next <= self._end:
                self._next += 1
                return self._next - 1
            return None

    def give_back(self, candidate: int) -> None:
        with self._lock:
            self._free.append(candidate)

    def add(self, last: int) -> None:
        """The counter now stands at `last`: ids `last - ID_BLOCK + 1` .. `last` are ours."""
        with self._lock:
            # A concurrent reservation of ours may still have ids left: keep them too.
            self._free.extend(range(self._next, self._end + 1))
            self._next, self._end = last - ID_BLOCK + 1, last


def _user(item: UserItem) -> User:
    return User(
        id=int(item.id or 0),  # 0: no id yet (never a real one: ids start at 1)
        openid=item.openid,
        unionid=item.unionid,
        nickname=item.nickname or "",
        avatar=item.avatar or "",
        avatar_key=item.avatar_key,
        bio=item.bio or "",
        session_key_enc=item.session_key_enc,
        phone_enc=item.phone_enc,
        phone_masked=item.phone_masked or "",
        recipe_count=int(item.recipe_count or 0),
        follower_count=int(item.follower_count or 0),
        following_count=int(item.following_count or 0),
        favorite_count=int(item.favorite_count or 0),
        created_at=item.created_at or "",
        updated_at=item.updated_at or "",
        sessions_revoked_at=int(item.sessions_revoked_at or 0),
    )


def _session(item: SessionItem) -> Session:
    return Session(
        sid=item.sid,
        user_id=int(item.user_id),
        openid=item.openid,
        refresh_hash=item.refresh_hash,
        created_at_us=int(item.created_at_us),
        expires_at=int(item.expires_at),
        prev_refresh_hash=item.prev_refresh_hash,
        rotated_at=float(item.rotated_at or 0),
        generation=int(item.generation or 0),
        revoked=bool(item.revoked),
        access_jti=item.access_jti or None,
        prev_access_jti=item.prev_access_jti or None,
        access_renewed_at=float(item.access_renewed_at or 0),
    )


def _live(item: SessionItem | None) -> Session | None:
    if item is None or int(item.expires_at) <= clock.now():
        return None
    return _session(item)


class DynamoDBStorage(Storage):
    """The domain's storage on DynamoDB (PynamoDB). Build one per process; thread-safe; no I/O here."""

    def __init__(self, settings: Settings) -> None:
        self._t = _tables(
            settings.users_table,
            settings.sessions_table,
            settings.cache_table,
            settings.aws_region,
            settings.dynamodb_endpoint,
        )
        self._ids = _IdBlock()

    @property
    def client(self) -> Any:
        """The botocore client every table uses (tests hook its events; `make bench` its transport)."""
        return self._t.users._get_connection().connection.client

    def key_names(self) -> dict[str, str]:
        """Each table's name and its hash key's name."""
        models: tuple[type[Model], ...] = (self._t.users, self._t.sessions, self._t.cache)
        return {model.Meta.table_name: str(model._hash_keyname) for model in models}

    # --- users -------------------------------------------------------------------------------

    def _update_within_rate(
        self, item: UserItem, actions: list[Action], rate: Rate | None, now: float, condition: Any = None
    ) -> None:
        """One UpdateItem of `actions` that also takes a token of the item's login bucket (`login_tat`).

        DynamoDB update expressions cannot take a maximum, so the bucket is taken in one of two ways:
        "idle" (absent or in the past: restart it from now), tried first because a returning user's
        previous login is long past, and "busy" (at most `window - interval` ahead: push it one interval
        further) only when that condition failed. RateLimited, nothing written, when both fail.
        """
        users = self._t.users
        if rate is None:
            with _storage_errors():
                item.update(actions=actions, condition=condition)
            return
        now = round(now, 3)
        tat = users.login_tat
        attempts: tuple[tuple[list[Action], Condition], ...] = (
            ([*actions, tat.set(now + rate.interval)], tat.does_not_exist() | (tat <= now)),
            ([*actions, tat.set(tat + rate.interval)], tat <= now + rate.tolerance),
        )
        for update, bucket in attempts:
            both = bucket if condition is None else bucket & condition
            if _write_if(lambda: item.update(actions=update, condition=both)):  # noqa: B023 (called at once)
                return
        # The next token is due at most one interval from now (the last one taken was due by now).
        raise RateLimited(rate.interval)

    def upsert_user_on_login(self, change: LoginUpsert) -> tuple[User, bool]:
        users = self._t.users
        stamp = change.stamp
        actions: list[Action] = [
            users.session_key_enc.set(change.session_key_enc),
            users.updated_at.set(stamp),
            users.created_at.set(users.created_at | stamp),
            users.bio.set(users.bio | ""),
            users.recipe_count.set(users.recipe_count | 0),
            users.follower_count.set(users.follower_count | 0),
            users.following_count.set(users.following_count | 0),
            users.favorite_count.set(users.favorite_count | 0),
            users.sessions_revoked_at.set(users.sessions_revoked_at | 0),
            users.nickname.set(change.nickname)
            if change.nickname
            else users.nickname.set(users.nickname | ""),
            users.avatar.set(change.avatar) if change.avatar else users.avatar.set(users.avatar | ""),
        ]
        if change.unionid:
            actions.append(users.unionid.set(change.unionid))
        item = users(change.openid)
        candidate = self._ids.take()
        if candidate is None:
            # No id reserved yet (this instance's first new user): a returning user pays nothing for
            # the reservation; a new one reserves a block and sets its id in a second write.
            self._update_within_rate(item, actions, change.rate, change.now)
            if item.id is not None:
                return _user(item), False
            return self._assign_id(item)
        # The id rides in the login's own write: the user is new iff it is stored with our candidate.
        actions.append(users.id.set(users.id | candidate))
        try:
            self._update_within_rate(item, actions, change.rate, change.now)
        except RateLimited:
            self._ids.give_back(candidate)  # nothing was written
            raise
        if int(item.id) == candidate:
            return _user(item), True
        self._ids.give_back(candidate)  # a returning user: its id was kept
        return _user(item), False

    def _assign_id(self, item: UserItem) -> tuple[User, bool]:
        counters, users = self._t.counters, self._t.users
        counter = counters(USER_ID_COUNTER_KEY)
        with _storage_errors():
            counter.update(actions=[counters.value.add(ID_BLOCK)])
        self._ids.add(int(counter.value))
        candidate = self._ids.take()
        if candidate is None:  # pragma: no cover (a block was just added)
            raise StorageUnavailable()
        if _write_if(
            lambda: item.update(actions=[users.id.set(candidate)], condition=users.id.does_not_exist())
        ):
            return _user(item), True
        # A concurrent first login set the id: it is the user's, and our candidate stays unused.
        self._ids.give_back(candidate)
        stored = _get(users, item.openid)
        if stored is None or stored.id is None:
            raise StorageUnavailable()  # the condition failed, yet no id is stored: never a token
        return _user(stored), False

    def take_login_quota(self, openid: str, rate: Rate | None, now: float) -> User | None:
        users = self._t.users
        item = users(openid)
        unchanged: list[Action] = [users.sessions_revoked_at.set(users.sessions_revoked_at | 0)]
        try:
            self._update_within_rate(item, unchanged, rate, now, condition=users.openid.exists())
        except RateLimited:
            if rate is not None and _get(users, openid) is None:
                return None
            raise
        except _ConditionFailed:  # without a rate: the only condition is that the user exists
            return None
        return _user(item)

    def get_user(self, openid: str) -> User | None:
        item = _get(self._t.users, openid)
        return None if item is None else _user(item)

    def get_session_and_user(self, sid: str, openid: str) -> tuple[Session | None, User | None]:
        sessions, users = self._t.sessions, self._t.users
        # One round trip for both, strongly consistent; on the models' own connection (a second
        # botocore client would cost cold-start time).
        connection = sessions._get_connection().connection
        with _storage_errors(), TransactGet(connection=connection) as transaction:
            session_future = transaction.get(sessions, sid)
            user_future = transaction.get(users, openid)
        try:
            session_item: SessionItem | None = session_future.get()
        except sessions.DoesNotExist:
            session_item = None
        try:
            user_item: UserItem | None = user_future.get()
        except users.DoesNotExist:
            user_item = None
        return _live(session_item), None if user_item is None else _user(user_item)

    def update_profile(self, openid: str, change: ProfileChange) -> User | None:
        users = self._t.users
        fields: list[Action] = [
            attribute.set(value)
            for attribute, value in (
                (users.nickname, change.nickname),
                (users.avatar, change.avatar),
                (users.bio, change.bio),
            )
            if value is not None
        ]
        exists = users.openid.exists()
        not_later = users.updated_at.does_not_exist() | (users.updated_at <= change.stamp)
        item = users(openid)
        if _write_if(
            lambda: item.update(
                actions=[users.updated_at.set(change.stamp), *fields], condition=exists & not_later
            )
        ):
            return _user(item)
        # A write stamped later than ours landed first (or there is no such user): keep its stamp,
        # still save our fields.
        if not fields:
            stored = _get(users, openid)
            return None if stored is None else _user(stored)
        if _write_if(lambda: item.update(actions=fields, condition=exists)):
            return _user(item)
        return None

    def bind_phone(self, openid: str, *, phone_enc: str, phone_masked: str, stamp: str) -> User | None:
        users = self._t.users
        item = users(openid)
        actions: list[Action] = [
            users.phone_enc.set(phone_enc),
            users.phone_masked.set(phone_masked),
            users.updated_at.set(stamp),
        ]
        if _write_if(lambda: item.update(actions=actions, condition=users.openid.exists())):
            return _user(item)
        return None

    def set_avatar_if(self, openid: str, *, expected_key: str | None, key: str, url: str, stamp: str) -> bool:
        users = self._t.users
        unchanged = users.avatar_key == expected_key if expected_key else users.avatar_key.does_not_exist()
        actions: list[Action] = [
            users.avatar.set(url),
            users.avatar_key.set(key),
            users.updated_at.set(stamp),
        ]
        item = users(openid)
        return _write_if(lambda: item.update(actions=actions, condition=users.openid.exists() & unchanged))

    def revoke_sessions_before(self, openid: str, cutoff_us: int) -> None:
        users = self._t.users
        # Only forward: of two concurrent logout-alls, the earlier cutoff landing last changes nothing
        # (it would otherwise bring back sessions created between the two).
        forward = users.sessions_revoked_at.does_not_exist() | (users.sessions_revoked_at < cutoff_us)
        _write_if(
            lambda: users(openid).update(
                actions=[users.sessions_revoked_at.set(cutoff_us)], condition=users.openid.exists() & forward
            )
        )

    # --- sessions ----------------------------------------------------------------------------

    def start_session(self, session: NewSession, *, replay: LoginRecord | None = None) -> None:
        sessions = self._t.sessions
        item = sessions(
            session.sid,
            user_id=session.user_id,
            openid=session.openid,
            refresh_hash=session.refresh_hash,
            created_at_us=session.created_at_us,
            expires_at=session.expires_at,
            access_jti=session.access_jti,
            ttl=session.expires_at + SESSION_TTL_SLACK_S,
        )
        new = sessions.sid.does_not_exist()

        def save() -> None:
            if replay is None:
                item.save(condition=new)
                return
            # One transaction: the replay record costs no round trip of its own, and exists only
            # if the session does.
            with TransactWrite(connection=sessions._get_connection().connection) as transaction:
                transaction.save(item, condition=new)
                transaction.save(self._replay_item(replay))

        if not _write_if(save):
            # A random 128-bit id already taken: never expected, so no token and no retry of our own.
            raise StorageUnavailable()

    def get_session(self, sid: str) -> Session | None:
        return _live(_get(self._t.sessions, sid))

    def rotate_refresh_if_current(self, rotation: Rotation) -> Session | None:
        sessions = self._t.sessions
        item = sessions(rotation.sid)
        actions: list[Action] = [
            sessions.refresh_hash.set(rotation.successor_hash),
            sessions.prev_refresh_hash.set(rotation.presented_hash),
            sessions.rotated_at.set(rotation.now),
            sessions.generation.add(1),
            sessions.expires_at.set(rotation.expires_at),
            sessions.ttl.set(rotation.expires_at + SESSION_TTL_SLACK_S),
            # Before `access_jti` is set: every operand reads the item as it was.
            sessions.prev_access_jti.set(sessions.access_jti | ""),
            sessions.access_jti.set(rotation.access_jti),
            sessions.access_renewed_at.set(rotation.now),
        ]
        condition = (
            (sessions.refresh_hash == rotation.presented_hash)
            & (sessions.revoked == False)  # noqa: E712 (a DynamoDB condition, not a comparison)
            & (sessions.expires_at > int(rotation.now))
        )
        if _write_if(lambda: item.update(actions=actions, condition=condition)):
            return _session(item)
        return None

    def renew_access_if_current(self, renewal: Renewal) -> Session | None:
        sessions = self._t.sessions
        item = sessions(renewal.sid)
        actions: list[Action] = [
            sessions.prev_access_jti.set(renewal.presented_jti),
            sessions.access_jti.set(renewal.new_jti),
            sessions.access_renewed_at.set(renewal.now),
        ]
        latest = (sessions.access_jti == renewal.presented_jti) | sessions.access_jti.does_not_exist()
        condition = (
            latest
            & (sessions.revoked == False)  # noqa: E712 (a DynamoDB condition, not a comparison)
            & (sessions.expires_at > int(renewal.now))
        )
        if _write_if(lambda: item.update(actions=actions, condition=condition)):
            return _session(item)
        return None

    def revoke_session(self, sid: str, user_id: int) -> None:
        sessions = self._t.sessions
        _write_if(
            lambda: sessions(sid).update(
                actions=[sessions.revoked.set(True)],
                condition=sessions.sid.exists() & (sessions.user_id == user_id),
            )
        )

    # --- login codes -------------------------------------------------------------------------

    def _replay_item(self, record: LoginRecord) -> CacheItem:
        return self._t.cache(
            f"login#{record.key}",
            data=json.dumps({"openid": record.openid, "is_new_user": record.is_new_user}),
            expires_at=record.expires_at,
            ttl=record.expires_at + REPLAY_TTL_SLACK_S,
        )

    def claim_login_code(self, key: str, *, now: float, claim_until: int) -> LoginRecord | CodeClaimed | None:
        cache = self._t.cache
        pk = f"login#{key}"
        for _ in range(CLAIM_ATTEMPTS):
            claim = cache(pk, expires_at=claim_until, ttl=claim_until + REPLAY_TTL_SLACK_S)
            free = cache.pk.does_not_exist() | (cache.expires_at < int(now))
            if _write_if(lambda: claim.save(condition=free)):  # noqa: B023 (called at once)
                return None
            item = _get(cache, pk)
            if item is None:
                continue  # released since: claim it again
            if item.data:
                record = json.loads(item.data)
                return LoginRecord(
                    key, str(record["openid"]), bool(record["is_new_user"]), int(item.expires_at)
                )
            return CODE_CLAIMED
        return CODE_CLAIMED

    def remember_login(self, record: LoginRecord) -> None:
        item = self._replay_item(record)
        _write_if(lambda: item.save(condition=self._t.cache.data.does_not_exist()))

    def release_login_code(self, key: str) -> None:
        cache = self._t.cache
        _write_if(lambda: cache(f"login#{key}").delete(condition=cache.data.does_not_exist()))

    # --- rate limits ---------------------------------------------------------------------------

    def count_rejected_code(self, bucket: str, *, window_ends: int) -> int:
        cache = self._t.cache
        counter = cache(f"rate#{bucket}")
        with _storage_errors():
            counter.update(
                actions=[
                    cache.counter.add(1),
                    cache.expires_at.set(window_ends),
                    cache.ttl.set(window_ends + RATE_TTL_SLACK_S),
                ]
            )
        return int(counter.counter or 0)

    # --- WeChat's server access token ----------------------------------------------------------

    def read_wechat_token(self, appid: str) -> CachedWeChatToken | None:
        item = _get(self._t.cache, f"wxtoken#{appid}")
        if item is None:
            return None
        return CachedWeChatToken(item.data or "", int(item.version or 0), int(item.expires_at or 0))

    def save_wechat_token_if(self, appid: str, token: CachedWeChatToken, *, expected_version: int) -> bool:
        cache = self._t.cache
        item = cache(
            f"wxtoken#{appid}",
            data=token.token_enc,
            version=token.version,
            expires_at=token.expires_at,
            ttl=token.expires_at + TOKEN_TTL_SLACK_S,
        )
        # Absent (first token, or deleted by TTL) or still the version the caller read.
        condition = cache.pk.does_not_exist() | (cache.version == expected_version)
        return _write_if(lambda: item.save(condition=condition))

    def invalidate_wechat_token(self, appid: str, version: int) -> bool:
        cache = self._t.cache
        return _write_if(
            lambda: cache(f"wxtoken#{appid}").update(
                actions=[cache.expires_at.set(0)],
                condition=(cache.version == version) & (cache.expires_at > 0),
            )
        )

    def acquire_lease(self, name: str, *, holder: str, now: float, until: int) -> bool:
        cache = self._t.cache
        lease = cache(f"{name}#lease", data=holder, expires_at=until, ttl=until + TOKEN_TTL_SLACK_S)
        free = cache.pk.does_not_exist() | (cache.expires_at < int(now))
        return _write_if(lambda: lease.save(condition=free))

    def release_lease(self, name: str, *, holder: str) -> None:
        cache = self._t.cache
        _write_if(lambda: cache(f"{name}#lease").delete(condition=cache.data == holder))

    # --- operations ----------------------------------------------------------------------------

    def create_schema(self) -> None:
        models: tuple[type[Model], ...] = (self._t.users, self._t.sessions, self._t.cache)
        with _storage_errors():
            for model in models:
                if not model.exists():
                    model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")

    def all_users_and_sessions(self) -> tuple[list[User], list[Session]]:
        with _storage_errors():
            users = [
                _user(item)
                for item in self._t.users.scan(consistent_read=True)
                if item.openid != USER_ID_COUNTER_KEY
            ]
            sessions = [_session(item) for item in self._t.sessions.scan(consistent_read=True)]
        return users, sessions
