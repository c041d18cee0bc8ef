"""`make dev`'s avatar flow over real HTTP: upload as wx.uploadFile does, then fetch the URL it answers."""

import httpx

from tests import avatar_samples as samples


def test_upload_then_download_the_avatar_from_the_dev_server(dev_server):
    login = httpx.post(f"{dev_server.url}/api/v1/auth/wx-login", json={"code": "painter.1"}, timeout=15)
    assert login.status_code == 200, login.text
    token = login.json()["data"]["access_token"]

    original = samples.webp()
    body, content_type = samples.multipart(original, filename="wxfile://tmp_abc.webp")
    uploaded = httpx.post(
        f"{dev_server.url}/api/v1/user/avatar",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
        timeout=15,
    )
    assert uploaded.status_code == 200, uploaded.text
    url = uploaded.json()["data"]["avatar"]
    # The URL the mini-program gets points at this very server (its PORT), not a default one.
    assert url.startswith(f"{dev_server.url}/local-avatars/avatars/")

    image = httpx.get(url, timeout=15)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/webp"
    assert samples.pixel_difference(samples.decode(original), samples.decode(image.content)) == (0, 0.0)
    assert b"xmpmeta" not in image.content
