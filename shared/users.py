"""Users: creation on first login, profile reads and updates, and the views the API answers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from shared.clock import iso_ms, micros
from shared.crypto import encrypt_at_rest
from shared.errors import StorageUnavailable
from shared.storage.base import LoginUpsert, ProfileChange, Rate, Storage, User

# WeChat's placeholder for users who shared no nickname: never worth storing over a real one.
ANONYMOUS_NICKNAME = "微信用户"


@dataclass(frozen=True)
class UserSummary:
    """The user as the login answer shows it."""

    id: int
    openid: str
    nickname: str
    avatar: str
    created_at: str


@dataclass(frozen=True)
class ProfileView(UserSummary):
    """The user as the profile endpoints show it: no session_key, no unionid, no full phone number."""

    bio: str
    recipe_count: int
    follower_count: int
    following_count: int
    favorite_count: int
    updated_at: str
    phone_masked: str


def upsert_on_login(
    store: Storage,
    *,
    openid: str,
    session_key: str,
    unionid: str | None,
    nickname: str | None,
    avatar: str | None,
    encryption_key: bytes,
    now: float,
    rate: Rate | None = None,
) -> tuple[User, bool]:
    """Create or update the user `openid` at login; answer it and whether this call created it.

    Concurrent first logins of one openid all answer the same `id`, and exactly one answers True.
    With `rate`, the same write takes a token of the openid's login limit (RATE_LIMITED: nothing written).
    """
    change = LoginUpsert(
        openid=openid,
        session_key_enc=encrypt_at_rest(encryption_key, session_key, openid),
        unionid=unionid or None,
        nickname=nickname if nickname and nickname != ANONYMOUS_NICKNAME else None,
        avatar=avatar or None,
        stamp=iso_ms(now),
        now=now,
        rate=rate,
    )
    return store.upsert_user_on_login(change)


def update_profile(
    store: Storage, user: User, *, nickname: str | None, avatar: str | None, bio: str | None, now: float
) -> User:
    """Overwrite the given profile fields of an existing user and answer the stored result.

    `updated_at` never moves backwards: when a write stamped later than `now` landed first (concurrent
    PATCHes: each stamps its own clock before writing), ours keeps that stamp.
    """
    change = ProfileChange(nickname=nickname, avatar=avatar, bio=bio, stamp=iso_ms(now))
    stored = store.update_profile(user.openid, change)
    if stored is None:
        raise StorageUnavailable()  # the user vanished under a live session: never expected
    return stored


def bind_phone(store: Storage, user: User, *, phone_enc: str, phone_masked: str, now: float) -> User:
    """Store a user's phone number (already encrypted) and its masked form; answers the stored user."""
    stored = store.bind_phone(user.openid, phone_enc=phone_enc, phone_masked=phone_masked, stamp=iso_ms(now))
    if stored is None:
        raise StorageUnavailable()  # the user vanished under a live session: never expected
    return stored


# Concurrent uploads of one user: each retry re-reads the user, so this only bounds a pathological race.
AVATAR_WRITE_ATTEMPTS = 3


def set_uploaded_avatar(
    store: Storage, user: User, key: str, url: str, now: float
) -> tuple[User, str | None]:
    """Set the user's avatar to `url` (object `key`); answers the updated user and the key of the
    object it replaced.

    Conditional on the stored key being the one we read: two racing uploads cannot both claim to
    replace the same object, so the loser's predecessor (the winner's object) is never deleted, and
    none is left behind.
    """
    stamp = iso_ms(now)
    current: User | None = user
    for _ in range(AVATAR_WRITE_ATTEMPTS):
        if current is None:
            break
        previous = current.avatar_key
        if store.set_avatar_if(current.openid, expected_key=previous, key=key, url=url, stamp=stamp):
            updated = dataclasses.replace(current, avatar=url, avatar_key=key, updated_at=stamp)
            return updated, previous
        current = store.get_user(user.openid)
    raise StorageUnavailable()


def revoke_all_sessions(store: Storage, openid: str, now: float) -> None:
    """Revoke every session of a user that exists now, in one write (the cutoff only moves forward)."""
    store.revoke_sessions_before(openid, micros(now))


def user_summary(user: User) -> UserSummary:
    """The user as the login answer shows it."""
    return UserSummary(
        id=user.id, openid=user.openid, nickname=user.nickname, avatar=user.avatar, created_at=user.created_at
    )


def profile_view(user: User) -> ProfileView:
    """The user as the profile endpoints show it."""
    return ProfileView(
        **dataclasses.asdict(user_summary(user)),
        bio=user.bio,
        recipe_count=user.recipe_count,
        follower_count=user.follower_count,
        following_count=user.following_count,
        favorite_count=user.favorite_count,
        updated_at=user.updated_at,
        phone_masked=user.phone_masked,
    )
