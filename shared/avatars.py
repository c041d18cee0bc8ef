"""Avatar uploads: clean the image, store it, point the user at it, delete the object it replaced."""

from __future__ import annotations

import logging

from shared.avatar_store import AvatarStore
from shared.images import clean_avatar
from shared.storage.base import Storage, User
from shared.users import set_uploaded_avatar

logger = logging.getLogger(__name__)


def replace_avatar(avatars: AvatarStore, store: Storage, user: User, data: bytes, *, now: float) -> User:
    """Make the uploaded image `data` the user's avatar; answers the updated user.

    The new object is written first and the user updated second, so a failure leaves the old avatar
    in place (and the new object deleted). The replaced object is deleted last, best effort.
    """
    image = clean_avatar(data)
    key = avatars.put(image)
    try:
        user, replaced = set_uploaded_avatar(store, user, key, avatars.url_for(key), now)
    except BaseException:
        avatars.delete(key)
        raise
    if replaced and not avatars.delete(replaced):
        # An orphan costs a few KiB and breaks nothing; it is logged so it can be swept.
        logger.warning("replaced avatar object not deleted: %s", replaced)
    return user
