"""shared.images: magic bytes, limits, re-encoding without metadata, fidelity of the pixels."""

import io

import pytest
from PIL import Image, ImageCms, ImageOps

from shared.errors import Reason, ServiceError
from shared.images import MAX_AVATAR_BYTES, MAX_PIXELS, clean_avatar, sniff
from tests import avatar_samples as samples


def rejected(data: bytes) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        clean_avatar(data)
    return caught.value


def assert_no_metadata(data: bytes) -> None:
    image = samples.decode(data)
    assert not image.getexif(), dict(image.getexif())
    for key in ("exif", "xmp", "XML:com.adobe.xmp", "comment", "Author", "Comment"):
        assert key not in image.info, key
    for secret in samples.SECRET_STRINGS:
        assert secret not in data, secret


@pytest.mark.parametrize(
    ("kind", "data"),
    [("jpeg", samples.jpeg()), ("png", samples.png()), ("webp", samples.webp()), (None, samples.gif())],
)
def test_types_are_told_by_their_magic_bytes(kind, data):
    assert sniff(data) == kind


def test_a_jpeg_loses_its_metadata_and_keeps_its_pixels():
    original = samples.jpeg()
    assert samples.CAMERA.encode() in original  # the sample really carries it
    clean = clean_avatar(original)
    assert (clean.kind, clean.content_type, clean.extension) == ("jpeg", "image/jpeg", "jpg")
    assert_no_metadata(clean.content)
    # Re-encoded with the source's own quantization tables: a level or two at most, on average well below.
    largest, mean = samples.pixel_difference(samples.decode(original), samples.decode(clean.content))
    assert largest <= 32 and mean < 1.5, (largest, mean)
    tables = [getattr(samples.decode(data), "quantization", None) for data in (clean.content, original)]
    assert tables[0] and tables[0] == tables[1]


@pytest.mark.parametrize("kind", ["png", "webp"])
def test_lossless_images_come_back_pixel_for_pixel_without_metadata(kind):
    original = samples.SAMPLES[kind]()
    clean = clean_avatar(original)
    assert clean.kind == kind
    assert_no_metadata(clean.content)
    assert samples.pixel_difference(samples.decode(original), samples.decode(clean.content)) == (0, 0.0)


def test_a_lossy_webp_stays_close():
    original = samples.webp(lossless=False)
    clean = clean_avatar(original)
    assert_no_metadata(clean.content)
    largest, mean = samples.pixel_difference(samples.decode(original), samples.decode(clean.content))
    assert mean < 2.0, (largest, mean)


def test_transparency_survives():
    rgba = samples.picture(mode="RGBA")
    for data in (samples.png(rgba), samples.webp(rgba)):
        clean = samples.decode(clean_avatar(data).content)
        assert clean.mode == "RGBA"
        assert samples.pixel_difference(rgba, clean) == (0, 0.0)
    # A palette PNG with a transparent colour comes back as explicit alpha, same pixels.
    palette = samples.picture().quantize(16)
    palette.info["transparency"] = 0
    data = samples.png(palette, transparency=0)
    assert samples.pixel_difference(samples.decode(data), samples.decode(clean_avatar(data).content)) == (
        0,
        0.0,
    )


def test_exif_orientation_is_applied_to_the_pixels_then_dropped():
    # Orientation 6: the camera was turned; viewers rotate 90° clockwise. Without the tag, we must.
    original = samples.jpeg(orientation=6)
    clean = samples.decode(clean_avatar(original).content)
    assert clean.size == (64, 96)
    upright = ImageOps.exif_transpose(samples.decode(original))
    largest, mean = samples.pixel_difference(upright, clean)
    assert mean < 1.5, (largest, mean)
    assert samples.ORIENTATION not in clean.getexif()


def test_the_colour_profile_is_kept():
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    samples.picture().save(out, "PNG", icc_profile=profile)
    assert samples.decode(clean_avatar(out.getvalue()).content).info.get("icc_profile") == profile


def test_bytes_after_the_image_are_not_kept():
    payload = b"<script>alert(1)</script>"
    clean = clean_avatar(samples.jpeg() + payload)
    assert payload not in clean.content


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "为空"),
        (samples.gif(), "不支持"),
        (samples.HTML_AS_PNG, "不支持"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "无法解码"),  # a PNG signature and nothing valid after it
        (samples.jpeg()[:200], "无法解码"),  # truncated
        (b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 8, "无法解码"),
    ],
    ids=["empty", "gif", "html-renamed-png", "signature-only", "truncated-jpeg", "fake-webp"],
)
def test_what_is_not_an_accepted_image_is_content_rejected(data, words):
    error = rejected(data)
    assert error.reason is Reason.CONTENT_REJECTED
    assert words in error.message


def test_too_many_pixels_is_rejected_before_decoding():
    # A decompression bomb in miniature: 5000 x 5000 of one colour is a few KiB of PNG.
    out = io.BytesIO()
    Image.new("L", (5000, 5000)).save(out, "PNG")
    assert len(out.getvalue()) < 100 * 1024 and MAX_PIXELS < 5000 * 5000
    error = rejected(out.getvalue())
    assert error.reason is Reason.CONTENT_REJECTED and "尺寸" in error.message


def test_over_2_mib_is_payload_too_large_whatever_it_is():
    error = rejected(samples.jpeg()[:-2] + b"\x00" * MAX_AVATAR_BYTES + b"\xff\xd9")
    assert error.reason is Reason.PAYLOAD_TOO_LARGE
    assert len(clean_avatar(samples.jpeg()).content) < MAX_AVATAR_BYTES
