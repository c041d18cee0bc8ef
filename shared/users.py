"""User records: race-free creation on first login, profile reads and updates."""

from __future__ import annotations

from pynamodb.expressions.update import Action

from shared.clock import iso_ms, micros
from shared.crypto import encrypt_at_rest
from shared.errors import StorageUnavailable
from shared.models import (
    USER_ID_COUNTER_KEY,
    CounterModel,
    UserModel,
    storage_errors,
    write_if,
)
from shared.ratelimit import Rate, update_within_rate

# WeChat's placeholder for users who shared no nickname: never worth storing over a real one.
ANONYMOUS_NICKNAME = "微信用户"


def upsert_on_login(
    *,
    openid: str,
    session_key: str,
    unionid: str | None,
    nickname: str | None,
    avatar: str | None,
    encryption_key: bytes,
    now: float,
    rate: Rate | None = None,
) -> tuple[UserModel, bool]:
    """Create or update the user `openid` at login; answer it and whether this call created it.

    Concurrent first logins of one openid all answer the same `id`, and exactly one answers True.
    With `rate`, the same write takes a token of the openid's login limit (RATE_LIMITED: nothing written).
    """
    stamp = iso_ms(now)
    user = UserModel(openid)
    actions: list[Action] = [
        UserModel.session_key_enc.set(encrypt_at_rest(encryption_key, session_key, openid)),
        UserModel.updated_at.set(stamp),
        UserModel.created_at.set(UserModel.created_at | stamp),
        UserModel.bio.set(UserModel.bio | ""),
        UserModel.recipe_count.set(UserModel.recipe_count | 0),
        UserModel.follower_count.set(UserModel.follower_count | 0),
        UserModel.following_count.set(UserModel.following_count | 0),
        UserModel.favorite_count.set(UserModel.favorite_count | 0),
        UserModel.sessions_revoked_at.set(UserModel.sessions_revoked_at | 0),
    ]
    if unionid:
        actions.append(UserModel.unionid.set(unionid))
    if nickname and nickname != ANONYMOUS_NICKNAME:
        actions.append(UserModel.nickname.set(nickname))
    else:
        actions.append(UserModel.nickname.set(UserModel.nickname | ""))
    if avatar:
        actions.append(UserModel.avatar.set(avatar))
    else:
        actions.append(UserModel.avatar.set(UserModel.avatar | ""))
    update_within_rate(user, actions, UserModel.login_tat, rate, now)
    if user.id is not None:
        return user, False
    with storage_errors():
        return _assign_id(user, now)


def _assign_id(user: UserModel, now: float) -> tuple[UserModel, bool]:
    counter = CounterModel(USER_ID_COUNTER_KEY)
    counter.update(actions=[CounterModel.value.add(1)])
    if not write_if(
        lambda: user.update(
            actions=[UserModel.id.set(counter.value)], condition=UserModel.id.does_not_exist()
        )
    ):
        # A concurrent first login won the race; its id is the user's. Our counter value is skipped.
        user.refresh(consistent_read=True)
        if user.id is None:
            raise StorageUnavailable() from None  # the condition failed, yet no id is stored: never a token
        return user, False
    return user, True


def update_profile(
    user: UserModel, *, nickname: str | None, avatar: str | None, bio: str | None, now: float
) -> UserModel:
    """Overwrite the given profile fields of an existing user and answer the stored result.

    `updated_at` never moves backwards: when a write stamped later than `now` landed first (concurrent
    PATCHes: each stamps its own clock before writing), ours keeps that stamp.
    """
    stamp = iso_ms(now)
    fields: list[Action] = [
        attribute.set(value)
        for attribute, value in (
            (UserModel.nickname, nickname),
            (UserModel.avatar, avatar),
            (UserModel.bio, bio),
        )
        if value is not None
    ]
    not_later = UserModel.updated_at.does_not_exist() | (UserModel.updated_at <= stamp)
    exists = UserModel.openid.exists()
    if write_if(
        lambda: user.update(actions=[UserModel.updated_at.set(stamp), *fields], condition=exists & not_later)
    ):
        return user
    # A write stamped later than ours landed first: keep its stamp, still save our fields.
    try:
        if fields:
            saved = write_if(lambda: user.update(actions=fields, condition=exists))
        else:
            with storage_errors():
                user.refresh(consistent_read=True)
            saved = True
    except UserModel.DoesNotExist:
        saved = False
    if not saved:
        raise StorageUnavailable()  # the user vanished under a live session: never expected
    return user


def bind_phone(user: UserModel, *, phone_enc: str, phone_masked: str, now: float) -> UserModel:
    """Store a user's phone number (already encrypted) and its masked form; answers the stored user."""
    with storage_errors():
        user.update(
            actions=[
                UserModel.phone_enc.set(phone_enc),
                UserModel.phone_masked.set(phone_masked),
                UserModel.updated_at.set(iso_ms(now)),
            ],
            condition=UserModel.openid.exists(),
        )
    return user


# Concurrent uploads of one user: each retry re-reads the user, so this only bounds a pathological race.
AVATAR_WRITE_ATTEMPTS = 3


def set_uploaded_avatar(user: UserModel, key: str, url: str, now: float) -> str | None:
    """Set the user's avatar to `url` (object `key`); answers the key of the object it replaced.

    Conditional on the stored key being the one we read: two racing uploads cannot both claim to
    replace the same object, so the loser's predecessor (the winner's object) is never deleted, and
    none is left behind.
    """
    actions: list[Action] = [
        UserModel.avatar.set(url),
        UserModel.avatar_key.set(key),
        UserModel.updated_at.set(iso_ms(now)),
    ]
    for _ in range(AVATAR_WRITE_ATTEMPTS):
        previous = user.avatar_key
        unchanged = UserModel.avatar_key == previous if previous else UserModel.avatar_key.does_not_exist()
        condition = UserModel.openid.exists() & unchanged
        if write_if(lambda: user.update(actions=actions, condition=condition)):  # noqa: B023 (called at once)
            return previous
        with storage_errors():
            user.refresh(consistent_read=True)
    raise StorageUnavailable()


def revoke_all_sessions(openid: str, now: float) -> None:
    """Revoke every session of a user that exists now, in one write."""
    write_if(
        lambda: UserModel(openid).update(
            actions=[UserModel.sessions_revoked_at.set(micros(now))], condition=UserModel.openid.exists()
        )
    )


def user_summary(user: UserModel) -> dict[str, object]:
    """The user as the login answer shows it."""
    return {
        "id": int(user.id or 0),
        "openid": user.openid,
        "nickname": user.nickname or "",
        "avatar": user.avatar or "",
        "created_at": user.created_at or "",
    }


def profile_view(user: UserModel) -> dict[str, object]:
    """The user as the profile endpoints show it: no session_key, no unionid, no full phone number."""
    return {
        **user_summary(user),
        "bio": user.bio or "",
        "recipe_count": int(user.recipe_count or 0),
        "follower_count": int(user.follower_count or 0),
        "following_count": int(user.following_count or 0),
        "favorite_count": int(user.favorite_count or 0),
        "updated_at": user.updated_at or "",
        "phone_masked": user.phone_masked or "",
    }
