"""Avatar uploads: clean the image, store it, point the user at it, delete the object it replaced."""

from __future__ import annotations

import logging

from pynamodb.exceptions import PynamoDBException

from shared.avatar_store import AvatarStore
from shared.clock import iso_ms
from shared.errors import StorageUnavailable
from shared.images import clean_avatar
from shared.models import UserModel, is_condition_failure, storage_errors

logger = logging.getLogger(__name__)

# Concurrent uploads of one user: each retry re-reads the user, so this only bounds a pathological race.
MAX_ATTEMPTS = 3


def replace_avatar(store: AvatarStore, user: UserModel, data: bytes, *, now: float) -> UserModel:
    """Make the uploaded image `data` the user's avatar; answers the updated user.

    The new object is written first and the user updated second, so a failure leaves the old avatar
    in place (and the new object deleted). The replaced object is deleted last, best effort.
    """
    image = clean_avatar(data)
    key = store.put(image)
    try:
        replaced = _point_user_at(user, key, store.url_for(key), now)
    except BaseException:
        store.delete(key)
        raise
    if replaced and not store.delete(replaced):
        # An orphan costs a few KiB and breaks nothing; it is logged so it can be swept.
        logger.warning("replaced avatar object not deleted: %s", replaced)
    return user


def _point_user_at(user: UserModel, key: str, url: str, now: float) -> str | None:
    """Set the user's avatar to `url` (object `key`); answers the key of the object it replaced.

    Conditional on the stored key being the one we read: two racing uploads cannot both claim to
    replace the same object, so the loser's predecessor (the winner's object) is never deleted, and
    none is left behind.
    """
    for _ in range(MAX_ATTEMPTS):
        previous = user.avatar_key
        unchanged = UserModel.avatar_key == previous if previous else UserModel.avatar_key.does_not_exist()
        try:
            with storage_errors():
                user.update(
                    actions=[
                        UserModel.avatar.set(url),
                        UserModel.avatar_key.set(key),
                        UserModel.updated_at.set(iso_ms(now)),
                    ],
                    condition=UserModel.openid.exists() & unchanged,
                )
        except PynamoDBException as exc:
            if not is_condition_failure(exc):
                raise
            with storage_errors():
                user.refresh(consistent_read=True)
            continue
        return previous
    raise StorageUnavailable()
