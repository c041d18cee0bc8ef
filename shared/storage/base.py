"""The storage interface of the domain: every operation login, sessions, users, limits and the WeChat
token cache need, each with its meaning and its guarantee, and the records they exchange.

Modelled on Powertools' idempotency persistence layer: the domain decides, an adapter stores. Each
method is one operation (usually one round trip: a DynamoDB request, or one packet of SQL), atomic on
its own; a method whose condition does not hold answers that (False / None) and writes nothing.
Anything else that fails (unreachable, throttled, timed out after bounded retries, a deadlock retried
too often) raises `shared.errors.StorageUnavailable`, and nothing is half-written.

Adapters never trust expired data: every read checks `expires_at` itself (physical deletion is
DynamoDB TTL, or the MySQL cleanup), so an expired record reads as absent.

Times: `now` is epoch seconds (float); `*_us` are epoch microseconds; `stamp` an ISO 8601 UTC string
with milliseconds (what the API shows). Secrets arrive already encrypted (`*_enc`) or hashed
(`*_hash`, `key`): an adapter never sees a token, a code, a session_key or a phone number in clear.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rate:
    """`limit` events per `window_s` seconds, in bursts of up to `limit` (GCRA)."""

    limit: int
    window_s: int

    @property
    def interval(self) -> float:
        return self.window_s / self.limit

    @property
    def tolerance(self) -> float:
        return self.window_s - self.interval


@dataclass(frozen=True)
class User:
    """A user as stored. Empty text fields are "", never None."""

    id: int
    openid: str
    unionid: str | None = None
    nickname: str = ""
    avatar: str = ""
    # The key of the avatar object we stored (set only by an upload): the one object an upload may delete.
    avatar_key: str | None = None
    bio: str = ""
    session_key_enc: str | None = field(default=None, repr=False)
    phone_enc: str | None = field(default=None, repr=False)
    phone_masked: str = ""
    recipe_count: int = 0
    follower_count: int = 0
    following_count: int = 0
    favorite_count: int = 0
    created_at: str = ""
    updated_at: str = ""
    # Sessions created at or before this instant (microseconds) are revoked: logout-all in one write.
    sessions_revoked_at: int = 0


@dataclass(frozen=True)
class Session:
    """One of our sessions: its refresh-token chain (hashes only), its latest access token and state."""

    sid: str
    user_id: int
    openid: str
    refresh_hash: str
    created_at_us: int
    expires_at: int
    prev_refresh_hash: str | None = None
    rotated_at: float = 0.0
    generation: int = 0
    revoked: bool = False
    # The `jti` of the session's latest access token (None: a session written before this was kept);
    # the one before it and when it was replaced, for the bearer refresh's 10 s grace.
    access_jti: str | None = None
    prev_access_jti: str | None = None
    access_renewed_at: float = 0.0


@dataclass(frozen=True)
class LoginUpsert:
    """What a successful code exchange writes on the user `openid`.

    `nickname` / `avatar`: None or "" keeps the stored value (the domain already dropped WeChat's
    anonymous placeholder). `rate`: take one token of the openid's login bucket in the same write.
    """

    openid: str
    session_key_enc: str = field(repr=False)
    unionid: str | None
    nickname: str | None
    avatar: str | None
    stamp: str
    now: float
    rate: Rate | None


@dataclass(frozen=True)
class NewSession:
    """A session to start (see `Storage.start_session`)."""

    sid: str
    user_id: int
    openid: str
    refresh_hash: str
    access_jti: str
    created_at_us: int
    expires_at: int


@dataclass(frozen=True)
class Rotation:
    """Replace `presented_hash` by `successor_hash` (and the latest access jti) on session `sid`."""

    sid: str
    presented_hash: str
    successor_hash: str
    access_jti: str
    now: float
    expires_at: int


@dataclass(frozen=True)
class Renewal:
    """Make `new_jti` the session's latest access token, if `presented_jti` still is."""

    sid: str
    presented_jti: str
    new_jti: str
    now: float


@dataclass(frozen=True)
class LoginRecord:
    """The first successful answer to a login code, kept for replays. `key` is a hash, never the code."""

    key: str
    openid: str
    is_new_user: bool
    expires_at: int


class CodeClaimed:
    """Another request owns the login code and has not answered yet (see `claim_login_code`)."""


CODE_CLAIMED = CodeClaimed()


@dataclass(frozen=True)
class ProfileChange:
    """Fields to overwrite (None: unchanged) and the write's `stamp`."""

    nickname: str | None
    avatar: str | None
    bio: str | None
    stamp: str


@dataclass(frozen=True)
class CachedWeChatToken:
    """WeChat's server access_token of one app, as shared by every instance (ciphertext only).

    `expires_at` is WeChat's expiry (epoch seconds), 0 once a caller saw WeChat reject it.
    """

    token_enc: str = field(repr=False)
    version: int
    expires_at: int


class Storage(ABC):
    """Everything the domain stores. One instance per process, built from settings at start."""

    # --- users -------------------------------------------------------------------------------

    @abstractmethod
    def upsert_user_on_login(self, change: LoginUpsert) -> tuple[User, bool]:
        """Create or update the user `change.openid`; answer it and whether this call created it.

        A new user gets a new integer id: unique, never reused (not necessarily dense). A known user
        keeps its id and created_at. session_key and unionid are written on every login; nickname and
        avatar only when non-empty. Concurrent first logins of one openid answer the same id, and
        exactly one answers True. With `change.rate`, one token of the openid's login bucket is taken in
        the same atomic write: when the bucket is empty, raises `RateLimited` and writes nothing.
        """

    @abstractmethod
    def take_login_quota(self, openid: str, rate: Rate | None, now: float) -> User | None:
        """Take one token of the openid's login bucket (a replayed login) and answer the user.

        `RateLimited` when empty (nothing written); None when no such user.
        """

    @abstractmethod
    def get_user(self, openid: str) -> User | None:
        """The user, read strongly consistent; None when absent."""

    @abstractmethod
    def get_session_and_user(self, sid: str, openid: str) -> tuple[Session | None, User | None]:
        """A session and a user read together in one strongly consistent round trip."""

    @abstractmethod
    def update_profile(self, openid: str, change: ProfileChange) -> User | None:
        """Overwrite the given fields; answer the stored user (None: no such user).

        `updated_at` never moves backwards: a write stamped later than `change.stamp` that landed first
        keeps its stamp (ours still saves its fields). No lost update of another field.
        """

    @abstractmethod
    def bind_phone(self, openid: str, *, phone_enc: str, phone_masked: str, stamp: str) -> User | None:
        """Store the user's phone number (encrypted) and its masked form; None: no such user."""

    @abstractmethod
    def set_avatar_if(self, openid: str, *, expected_key: str | None, key: str, url: str, stamp: str) -> bool:
        """Point the user at an uploaded avatar, if the stored avatar key is still `expected_key`."""

    @abstractmethod
    def revoke_sessions_before(self, openid: str, cutoff_us: int) -> None:
        """Revoke every session of the user created at or before `cutoff_us` (logout-all, one write).

        The cutoff only moves forward: a smaller cutoff than the stored one changes nothing.
        """

    # --- sessions ----------------------------------------------------------------------------

    @abstractmethod
    def start_session(self, session: NewSession, *, replay: LoginRecord | None = None) -> None:
        """Store a new session, and with it (same atomic write, same round trip) the login's replay
        record. A session id already taken raises StorageUnavailable (random 128-bit ids: never expected).
        """

    @abstractmethod
    def get_session(self, sid: str) -> Session | None:
        """The session, read strongly consistent; None when absent or past `expires_at`."""

    @abstractmethod
    def rotate_refresh_if_current(self, rotation: Rotation) -> Session | None:
        """Rotate the session's refresh token if `presented_hash` is still its current one and the session
        is live (not revoked, not expired): the previous hash and `rotated_at` are kept for the grace
        window, `generation` +1, `expires_at` set. The rotation issues a new access token too:
        `access_jti` becomes `rotation.access_jti`, the one it replaces becomes `prev_access_jti` (None
        when there was none) and `access_renewed_at` is `rotation.now`, so the replaced access token gets
        the bearer refresh's grace window as well. Answers the updated session, or None (nothing
        written) when the condition did not hold.
        """

    @abstractmethod
    def renew_access_if_current(self, renewal: Renewal) -> Session | None:
        """Make `new_jti` the latest access token of a live session if `presented_jti` is its latest one
        (or the session has none recorded yet: written before this was kept); `presented_jti` becomes
        `prev_access_jti` and `now` `access_renewed_at`, for the grace window. Answers the updated
        session, or None (nothing written).
        """

    @abstractmethod
    def revoke_session(self, sid: str, user_id: int) -> None:
        """Mark the session revoked (only if it belongs to `user_id`); an absent one is as good as revoked."""

    # --- login codes (replays of a code that already succeeded) --------------------------------

    @abstractmethod
    def claim_login_code(self, key: str, *, now: float, claim_until: int) -> LoginRecord | CodeClaimed | None:
        """None: this request now owns the code (claimed until `claim_until`, or until released).
        `key` is the SHA-256 (hex) of the code; a claim or record whose `expires_at` < `now` is free.

        A LoginRecord: the code already succeeded (record not expired): answer as a replay of it.
        CODE_CLAIMED: another request owns it and has not answered yet (its claim has not lapsed).
        """

    @abstractmethod
    def remember_login(self, record: LoginRecord) -> None:
        """Store the replay record of an owned code, unless one is already there (the first answer wins)."""

    @abstractmethod
    def release_login_code(self, key: str) -> None:
        """Drop an owned claim (not a record) after a failed login, so a retry need not wait for it."""

    # --- rate limits ---------------------------------------------------------------------------

    @abstractmethod
    def count_rejected_code(self, bucket: str, *, window_ends: int) -> int:
        """Add one to the counter of `bucket` and answer the new count (atomic). `bucket` names an IP's
        window, `ip#<ip>#<window number>`; the counter expires at `window_ends` (epoch seconds)."""

    # --- WeChat's server access token (one per appid, shared by every instance) -----------------

    @abstractmethod
    def read_wechat_token(self, appid: str) -> CachedWeChatToken | None:
        """The cached token of `appid` (strongly consistent), or None when none was stored.

        Answered even past its `expires_at`, and when invalidated (`expires_at` 0): the domain judges
        expiry itself, and needs the version (the next save is conditional on it) and the rejected
        ciphertext (WeChat's normal mode may hand back the very token it just rejected).
        """

    @abstractmethod
    def save_wechat_token_if(self, appid: str, token: CachedWeChatToken, *, expected_version: int) -> bool:
        """Store `token` (its `version` is expected_version + 1) if nobody stored another since
        `expected_version` was read (0: none stored, or expired away)."""

    @abstractmethod
    def invalidate_wechat_token(self, appid: str, version: int) -> bool:
        """Mark token `version` rejected (expires_at 0) unless refreshed or invalidated since; True if so."""

    @abstractmethod
    def acquire_lease(self, name: str, *, holder: str, now: float, until: int) -> bool:
        """Take the lease `name` for `holder` until `until` if it is free or lapsed (its stored end < `now`).

        `name` is the domain's, e.g. `wxtoken#<appid>` (the lease on refreshing that app's token)."""

    @abstractmethod
    def release_lease(self, name: str, *, holder: str) -> None:
        """Give the lease back early, only if `holder` still holds it."""

    # --- operations (deploy time, schedules, tests) ---------------------------------------------

    def all_users_and_sessions(self) -> tuple[list[User], list[Session]]:
        """Every stored user and session, expired and revoked ones included: a full scan, for checks that
        nothing was lost or duplicated (the behavioural tests, and `make stress` through the dev
        server's /__dev/stats). Never called by a deployed function."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its users and sessions")

    @abstractmethod
    def create_schema(self) -> None:
        """Create (or upgrade, idempotently) what the adapter stores into: local servers and tests.
        Deployed schemas come from infra (DynamoDB) or the migration command (MySQL), never a request."""
