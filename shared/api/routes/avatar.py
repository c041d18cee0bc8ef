"""POST /user/avatar: the image from `<button open-type="chooseAvatar">`, sent by wx.uploadFile."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Depends, File, UploadFile
from fastapi.responses import JSONResponse

from shared import clock
from shared.api.app import API_PREFIX
from shared.api.deps import CurrentPrincipal, StorageDep
from shared.api.envelope import success
from shared.api.schemas import BEARER, STORAGE, Envelope, Profile, error_responses
from shared.avatar_store import AvatarStore, avatar_store
from shared.avatars import replace_avatar
from shared.errors import Reason
from shared.images import ACCEPTED, MAX_AVATAR_BYTES
from shared.settings import get_settings
from shared.users import profile_view

AVATAR_PATH = f"{API_PREFIX}/user/avatar"
# The image plus multipart framing: boundaries, part headers (a long filename), and any formData
# fields wx.uploadFile adds. A larger image is refused by the route itself with the same reason.
MULTIPART_OVERHEAD = 64 * 1024
AVATAR_BODY_LIMIT = MAX_AVATAR_BYTES + MULTIPART_OVERHEAD

router = APIRouter(tags=["user"])


@lru_cache(maxsize=1)
def store() -> AvatarStore:
    """One S3 client per process, reused across invocations."""
    return avatar_store(get_settings())


@router.post(
    "/user/avatar",
    response_model=Envelope[Profile],
    responses=error_responses(*BEARER, Reason.CONTENT_REJECTED, *STORAGE),
)
def upload_avatar(
    principal: CurrentPrincipal,
    file: Annotated[
        UploadFile, File(description=f"The image ({ACCEPTED}, at most 2 MiB), multipart field `file`")
    ],
    avatars: Annotated[AvatarStore, Depends(store)],
    storage: StorageDep,
) -> JSONResponse:
    """Set the caller's avatar to the uploaded image; answers the updated profile."""
    # One byte more than allowed is enough to tell "too large" without reading a huge part.
    data = file.file.read(MAX_AVATAR_BYTES + 1)
    user = replace_avatar(avatars, storage, principal.user, data, now=clock.now())
    return success(profile_view(user))
