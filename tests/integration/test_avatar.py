"""POST /api/v1/user/avatar on every storage backend and moto's S3, through the app `make dev` serves
and through the avatar function's Lambda/SCF handler."""

import importlib
import resource
from urllib.parse import urlsplit

import boto3
import pytest

from shared.api.routes.avatar import AVATAR_BODY_LIMIT, store
from shared.avatar_store import CACHE_CONTROL, KEY_PREFIX, avatar_store
from shared.errors import Reason, ServerMisconfigured
from shared.images import MAX_AVATAR_BYTES, MAX_OUTPUT_SIDE
from shared.settings import load_settings
from tests import avatar_samples as samples
from tests.conftest import bearer, serve_storage
from tests.lambda_events import answer, apigw_v1, apigw_v2, lambda_context, tencent

AVATAR = "/api/v1/user/avatar"


@pytest.fixture
def s3(aws, settings):
    """The avatar bucket in moto's S3, and a fresh store per test."""
    client = boto3.client("s3", region_name=settings.aws_region)
    client.create_bucket(Bucket=settings.avatar_bucket)
    store.cache_clear()
    yield client
    store.cache_clear()


def keys_in_bucket(s3, settings):
    listing = s3.list_objects_v2(Bucket=settings.avatar_bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def upload(client, token, data, filename="tmp_avatar.jpg"):
    return client.post(AVATAR, headers=bearer(token), files={"file": (filename, data, "image/jpeg")})


def served(client, url):
    """Fetch an avatar URL from the dev server's /local-avatars route."""
    response = client.get(urlsplit(url).path)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("kind", ["jpeg", "png", "webp"])
def test_an_uploaded_image_becomes_the_avatar_and_is_served_back_without_metadata(
    client, login, s3, settings, kind
):
    token = login("alice")["access_token"]
    original = samples.SAMPLES[kind]()
    response = upload(client, token, original, filename=f"tmp_x.{kind}")
    assert response.status_code == 200, response.text
    profile = response.json()["data"]
    assert profile["openid"] == "sim-alice"
    assert profile["avatar"].startswith(f"{settings.avatar_base_url}/{KEY_PREFIX}")
    assert (
        client.get("/api/v1/user/profile", headers=bearer(token)).json()["data"]["avatar"]
        == profile["avatar"]
    )

    body = served(client, profile["avatar"])
    assert body.headers["content-type"] == samples.CONTENT_TYPES[kind]
    assert body.headers["cache-control"] == CACHE_CONTROL
    largest, mean = samples.pixel_difference(samples.decode(original), samples.decode(body.content))
    assert mean < 1.5 if kind == "jpeg" else (largest, mean) == (0, 0.0)
    for secret in samples.SECRET_STRINGS:
        assert secret not in body.content
    assert not samples.decode(body.content).getexif()
    assert keys_in_bucket(s3, settings) == [urlsplit(profile["avatar"]).path.removeprefix("/local-avatars/")]


@pytest.mark.parametrize(
    ("data", "filename"),
    [(samples.gif(), "a.gif"), (samples.HTML_AS_PNG, "innocent.png"), (b"", "empty.jpg")],
    ids=["gif", "html-renamed-png", "empty"],
)
def test_what_is_not_a_jpeg_png_or_webp_is_content_rejected_and_nothing_is_stored(
    client, login, s3, settings, data, filename
):
    token = login("alice")["access_token"]
    response = upload(client, token, data, filename)
    assert (response.status_code, response.json()["reason"]) == (400, "CONTENT_REJECTED")
    assert keys_in_bucket(s3, settings) == []
    assert client.get("/api/v1/user/profile", headers=bearer(token)).json()["data"]["avatar"] == ""


def cpu_seconds() -> float:
    """CPU time of this process and of the children it has waited for (the image sandbox)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: samples.progressive_jpeg(512, 512, 150_000), "复杂"),  # 1.9 MB: 150,000 scans
        (lambda: samples.lossless_webp(16384, 16384), "尺寸"),  # 34 bytes: 268 megapixels
        (lambda: samples.png_bomb(65535, 65535, rows=1), "尺寸"),
        (lambda: samples.animated_webp(50), "动图"),
    ],
    ids=["jpeg-150k-scans", "webp-16384-square", "png-65535-square", "animated-webp"],
)
def test_a_decoder_trap_is_refused_at_once_over_http_and_nothing_is_stored(
    client, login, s3, settings, build, words
):
    token = login("alice")["access_token"]
    data = build()
    assert len(data) <= MAX_AVATAR_BYTES
    before = cpu_seconds()
    response = upload(client, token, data)
    assert cpu_seconds() - before < 3.0
    assert (response.status_code, response.json()["reason"]) == (400, "CONTENT_REJECTED")
    assert words in response.json()["message"]
    assert keys_in_bucket(s3, settings) == []


def test_a_phone_photo_is_stored_scaled_down_and_upright(client, login, s3, settings):
    token = login("alice")["access_token"]
    response = upload(client, token, samples.phone_photo())  # 4000 x 3000, EXIF orientation 6
    assert response.status_code == 200, response.text
    stored = samples.decode(served(client, response.json()["data"]["avatar"]).content)
    assert (stored.format, stored.size) == ("JPEG", (768, MAX_OUTPUT_SIDE))
    assert not stored.getexif()


@pytest.mark.parametrize("size", [3 * 1024 * 1024, MAX_AVATAR_BYTES + 1], ids=["3MiB", "2MiB+1"])
def test_over_2_mib_is_payload_too_large(client, login, s3, settings, size):
    token = login("alice")["access_token"]
    data = samples.jpeg()
    data = data[:-2] + b"\x00" * (size - len(data)) + b"\xff\xd9"
    response = upload(client, token, data)
    assert (response.status_code, response.json()["reason"]) == (413, "PAYLOAD_TOO_LARGE")
    assert keys_in_bucket(s3, settings) == []


def test_the_upload_limit_is_the_avatar_routes_alone(client, login, s3):
    token = login("alice")["access_token"]
    big_json = {"bio": "x" * (20 * 1024)}
    response = client.patch("/api/v1/user/profile", headers=bearer(token), json=big_json)
    assert (response.status_code, response.json()["reason"]) == (413, "PAYLOAD_TOO_LARGE")
    assert AVATAR_BODY_LIMIT > MAX_AVATAR_BYTES  # room for the multipart framing
    photo = samples.jpeg(samples.picture(1200, 900), quality=95)
    assert len(photo) > 32 * 1024  # twice the JSON limit
    assert upload(client, token, photo).status_code == 200


def test_a_new_upload_deletes_the_replaced_object(client, login, s3, settings):
    token = login("alice")["access_token"]
    first = upload(client, token, samples.jpeg()).json()["data"]["avatar"]
    second = upload(client, token, samples.png(), "b.png").json()["data"]["avatar"]
    assert first != second
    assert keys_in_bucket(s3, settings) == [urlsplit(second).path.removeprefix("/local-avatars/")]
    assert client.get(urlsplit(first).path).status_code == 404


def test_an_upload_never_deletes_an_object_the_user_only_pointed_at(client, login, s3, settings):
    bob = login("bob")["access_token"]
    bobs_avatar = upload(client, bob, samples.jpeg()).json()["data"]["avatar"]
    mallory = login("mallory")["access_token"]
    # PATCH takes any https URL; the dev server's base URL is http, so use a lookalike deployed URL.
    stolen = "https://avatars.example.com/" + urlsplit(bobs_avatar).path.removeprefix("/local-avatars/")
    assert (
        client.patch("/api/v1/user/profile", headers=bearer(mallory), json={"avatar": stolen}).status_code
        == 200
    )
    upload(client, mallory, samples.png(), "m.png")
    assert urlsplit(bobs_avatar).path.removeprefix("/local-avatars/") in keys_in_bucket(s3, settings)
    served(client, bobs_avatar)


def test_racing_uploads_replace_each_other_and_leave_no_orphan(client, login, s3, settings, storage):
    from shared.avatars import replace_avatar

    login("alice")
    stale_a, stale_b = storage.get_user("sim-alice"), storage.get_user("sim-alice")
    avatars = store()
    replace_avatar(avatars, storage, stale_a, samples.jpeg(), now=1.0)
    # B read the user before A's write: its conditional update fails once, re-reads, and replaces A's.
    b = replace_avatar(avatars, storage, stale_b, samples.png(), now=2.0)
    assert keys_in_bucket(s3, settings) == [b.avatar_key]
    assert storage.get_user("sim-alice").avatar_key == b.avatar_key


def test_s3_failure_is_storage_unavailable_and_the_avatar_is_unchanged(client, login, s3, settings):
    token = login("alice")["access_token"]
    s3.delete_bucket(Bucket=settings.avatar_bucket)
    response = upload(client, token, samples.jpeg())
    assert (response.status_code, response.json()["reason"]) == (503, "STORAGE_UNAVAILABLE")
    assert client.get("/api/v1/user/profile", headers=bearer(token)).json()["data"]["avatar"] == ""


def test_a_failed_user_update_deletes_the_new_object(client, login, s3, settings, monkeypatch):
    import shared.avatars
    from shared.errors import StorageUnavailable

    def fail(*_args, **_kwargs):
        raise StorageUnavailable()

    token = login("alice")["access_token"]
    monkeypatch.setattr(shared.avatars, "set_uploaded_avatar", fail)
    response = upload(client, token, samples.jpeg())
    assert (response.status_code, response.json()["reason"]) == (503, "STORAGE_UNAVAILABLE")
    assert keys_in_bucket(s3, settings) == []


def test_an_upload_needs_a_live_session_and_the_file_field(client, login, s3):
    response = client.post(AVATAR, files={"file": ("a.jpg", samples.jpeg(), "image/jpeg")})
    assert (response.status_code, response.json()["reason"]) == (401, "TOKEN_MISSING")
    token = login("alice")["access_token"]
    response = client.post(
        AVATAR, headers=bearer(token), files={"photo": ("a.jpg", samples.jpeg(), "image/jpeg")}
    )
    assert (response.status_code, response.json()["reason"]) == (400, "INVALID_REQUEST")
    assert "file" in response.json()["message"]
    response = client.post(AVATAR, headers=bearer(token), json={"file": "x"})
    assert (response.status_code, response.json()["reason"]) == (400, "INVALID_REQUEST")
    client.post("/api/v1/auth/logout", headers=bearer(token))
    response = upload(client, token, samples.jpeg())
    assert (response.status_code, response.json()["reason"]) == (401, "SESSION_REVOKED")


def test_unknown_local_avatar_is_not_found(client, s3):
    for path in ("/local-avatars/avatars/AAAAAAAAAAAAAAAAAAAAAAAA.jpg", "/local-avatars/../secrets"):
        response = client.get(path)
        assert (response.status_code, response.json()["reason"]) == (404, "NOT_FOUND")


def test_the_store_needs_its_settings_outside_local():
    with pytest.raises(ServerMisconfigured) as caught:
        avatar_store(load_settings({"STAGE": "prod"}), client=boto3.client("s3", region_name="us-east-1"))
    assert caught.value.setting_names == ["AVATAR_BUCKET", "AVATAR_BASE_URL"]
    assert caught.value.reason is Reason.SERVER_MISCONFIGURED
    assert "AVATAR_BASE_URL" in load_settings({"STAGE": "prod", "AVATAR_BASE_URL": "http://cdn"}).problems


@pytest.mark.parametrize("build", [apigw_v2, apigw_v1, tencent], ids=["apigw-v2", "apigw-v1", "tencent"])
def test_upload_through_the_avatar_functions_handler(login, s3, settings, storage, build):
    function = importlib.import_module("functions.avatar")
    serve_storage(function.app, storage)
    token = login("alice")["access_token"]
    body, content_type = samples.multipart(samples.png(), filename="wxfile_tmp.png")
    event = build(
        "POST", AVATAR, body, headers={"content-type": content_type, "authorization": f"Bearer {token}"}
    )
    assert event["isBase64Encoded"] is True
    status, envelope = answer(function.handler(event, lambda_context()))
    assert status == 200, envelope
    assert envelope["data"]["avatar"].startswith(settings.avatar_base_url)
    assert len(keys_in_bucket(s3, settings)) == 1

    # The function's larger body limit still ends at 2 MiB of image.
    too_big, content_type = samples.multipart(b"\xff\xd8\xff" + b"\x00" * (3 * 1024 * 1024))
    event = build(
        "POST", AVATAR, too_big, headers={"content-type": content_type, "authorization": f"Bearer {token}"}
    )
    status, envelope = answer(function.handler(event, lambda_context()))
    assert (status, envelope["reason"]) == (413, "PAYLOAD_TOO_LARGE")
