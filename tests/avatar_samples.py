"""Real images for the avatar tests, made with Pillow, carrying the metadata an upload must lose."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import httpx
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

# Metadata a phone photo carries and an avatar must not: who took it, with what, and where.
CAMERA = "SecretCam X100"
ARTIST = "Alice Example"
GPS_LATITUDE = (31.0, 14.0, 2.5)
COMMENT = b"private comment"
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description creator="alice"/></x:xmpmeta>'
SECRET_STRINGS = (CAMERA.encode(), ARTIST.encode(), COMMENT, b"xmpmeta")

ORIENTATION = 0x0112


def picture(width: int = 96, height: int = 64, mode: str = "RGB") -> Image.Image:
    """A photo-like picture: smooth gradients and shapes, asymmetric so a rotation would show."""
    ramp = Image.linear_gradient("L").resize((width, height))
    image = Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.FLIP_TOP_BOTTOM), ramp.rotate(180)))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 8, height // 8, width // 2, height * 3 // 4), fill=(200, 30, 90))
    draw.rectangle((width * 5 // 8, 4, width - 6, height // 3), fill=(20, 180, 60))
    image = image.filter(ImageFilter.GaussianBlur(1))
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize((width, height)))
    return image


def exif(orientation: int = 1) -> Image.Exif:
    """EXIF with a camera, an artist, a GPS position and an orientation."""
    data = Image.Exif()
    data[0x010F] = "Maker"
    data[0x0110] = CAMERA
    data[0x013B] = ARTIST
    data[ORIENTATION] = orientation
    data.get_ifd(0x8825).update({1: "N", 2: GPS_LATITUDE})
    return data


def jpeg(image: Image.Image | None = None, *, orientation: int = 1, quality: int = 85) -> bytes:
    out = io.BytesIO()
    (image or picture()).save(out, "JPEG", quality=quality, exif=exif(orientation), comment=COMMENT, xmp=XMP)
    return out.getvalue()


def png(image: Image.Image | None = None, **options: Any) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", ARTIST)
    info.add_itxt("Comment", COMMENT.decode(), zip=True)
    out = io.BytesIO()
    (image or picture()).save(out, "PNG", pnginfo=info, exif=exif(), **options)
    return out.getvalue()


def webp(image: Image.Image | None = None, *, lossless: bool = True) -> bytes:
    out = io.BytesIO()
    (image or picture()).save(out, "WEBP", lossless=lossless, quality=80, exif=exif(), xmp=XMP)
    return out.getvalue()


def gif() -> bytes:
    out = io.BytesIO()
    picture().convert("P").save(out, "GIF")
    return out.getvalue()


HTML_AS_PNG = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"

SAMPLES: dict[str, Callable[[], bytes]] = {"jpeg": jpeg, "png": png, "webp": webp}
CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def pixel_difference(a: Image.Image, b: Image.Image) -> tuple[int, float]:
    """The largest and the mean per-channel difference of two same-sized images, in RGBA."""
    assert a.size == b.size, (a.size, b.size)
    diff = ImageChops.difference(a.convert("RGBA"), b.convert("RGBA"))
    extrema: Any = diff.getextrema()  # one (low, high) per band
    largest = max(int(high) for _, high in extrema)
    return largest, max(ImageStat.Stat(diff).mean)


def multipart(data: bytes, *, filename: str = "tmp_avatar.jpg", field: str = "file") -> tuple[bytes, str]:
    """What wx.uploadFile sends: the body and its Content-Type (with the boundary)."""
    request = httpx.Request(
        "POST", "https://api.test/", files={field: (filename, data, "application/octet-stream")}
    )
    return request.read(), request.headers["content-type"]
