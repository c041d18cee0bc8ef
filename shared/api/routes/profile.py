"""GET and PATCH /user/profile."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from shared import clock
from shared.api.deps import CurrentPrincipal
from shared.api.envelope import success
from shared.api.schemas import ERROR_RESPONSES, Envelope, Profile, ProfilePatch
from shared.users import profile_view, update_profile

router = APIRouter(tags=["user"])


@router.get("/user/profile", response_model=Envelope[Profile], responses=ERROR_RESPONSES)
def get_profile(principal: CurrentPrincipal) -> JSONResponse:
    """The caller's profile."""
    return success(profile_view(principal.user))


@router.patch("/user/profile", response_model=Envelope[Profile], responses=ERROR_RESPONSES)
def patch_profile(principal: CurrentPrincipal, body: ProfilePatch) -> JSONResponse:
    """Change any of nickname, avatar and bio; answers the updated profile."""
    user = update_profile(
        principal.user, nickname=body.nickname, avatar=body.avatar, bio=body.bio, now=clock.now()
    )
    return success(profile_view(user))
