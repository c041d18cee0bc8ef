"""GET and PATCH /user/profile."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from shared import clock
from shared.api.deps import CurrentPrincipal, StorageDep
from shared.api.envelope import success
from shared.api.schemas import BEARER, STORAGE, WECHAT, Envelope, Profile, ProfilePatch, error_responses
from shared.errors import Reason
from shared.users import profile_view, update_profile

if TYPE_CHECKING:
    from shared.storage.base import Storage
    from shared.wechat_token import AccessTokenManager

router = APIRouter(tags=["user"])


@router.get("/user/profile", response_model=Envelope[Profile], responses=error_responses(*BEARER, *STORAGE))
def get_profile(principal: CurrentPrincipal) -> JSONResponse:
    """The caller's profile."""
    return success(profile_view(principal.user))


@router.patch(
    "/user/profile",
    response_model=Envelope[Profile],
    responses=error_responses(*BEARER, Reason.CONTENT_REJECTED, *WECHAT, *STORAGE),
)
def patch_profile(
    principal: CurrentPrincipal, body: ProfilePatch, store: StorageDep, request: Request
) -> JSONResponse:
    """Change any of nickname, avatar and bio; answers the updated profile.

    A new nickname or bio passes WeChat's content-security check first: CONTENT_REJECTED if it is
    judged risky, and nothing is saved; if the check cannot be made, its error, and nothing is saved.
    """
    if body.nickname or body.bio:
        from shared.content_security import check_profile_text

        check_profile_text(
            _access_tokens(request, store),
            principal.user.openid,
            nickname=body.nickname,
            bio=body.bio,
            current_nickname=principal.user.nickname or "",
            current_bio=principal.user.bio or "",
        )
    user = update_profile(
        store, principal.user, nickname=body.nickname, avatar=body.avatar, bio=body.bio, now=clock.now()
    )
    return success(profile_view(user))


def _access_tokens(request: Request, store: Storage) -> AccessTokenManager:
    """The WeChat access_token manager, imported on the first PATCH that needs it: the profile
    function's cold start (and every GET) never loads httpx or the WeChat client.

    Not a FastAPI dependency, for that reason; so an override of `wechat_client` (tests, `make dev`'s
    simulator) is honoured here the way FastAPI would honour it.
    """
    from shared.api.wechat_deps import access_token_manager, wechat_client

    provider = request.app.dependency_overrides.get(wechat_client, wechat_client)
    return access_token_manager(provider(), store)
