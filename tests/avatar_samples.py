"""Real images for the avatar tests, made with Pillow, carrying the metadata an upload must lose."""

from __future__ import annotations

import io
import struct
import zlib
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


# --- Adversarial and at-the-limit files, built byte by byte -------------------------------------------------
# Each is what a decoder would spend seconds or gigabytes on without the checks in shared/images.py.


def _segment(marker: int, body: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(body) + 2) + body


def progressive_jpeg(
    width: int, height: int, scans: int, *, components: int = 1, refine: bool = True
) -> bytes:
    """A progressive JPEG of one DC scan, then `scans` AC scans (refinements when `refine`).

    Every scan is one end-of-band run over all blocks of its component: ~25 bytes, and a pass over up to
    262,144 blocks (4096 x 4096), 63 coefficients each for a refinement. libjpeg takes every scan; an
    encoder writes about 10.
    """
    blocks = -(-width // 8) * -(-height // 8)
    ids = range(1, components + 1)
    frame = struct.pack(">BHHB", 8, height, width, components) + b"".join(bytes((i, 0x11, 0)) for i in ids)
    out = [b"\xff\xd8", _segment(0xDB, b"\x00" + bytes([1] * 64)), _segment(0xC2, frame)]
    # Huffman tables with one code each, "0": DC category 0 (no change), AC EOB14 (+14 bits: a run of
    # up to 32767 empty blocks).
    out += [_segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")]
    out += [_segment(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\xe0")]
    out += [_segment(0xDA, bytes([components]) + b"".join(bytes((i, 0)) for i in ids) + b"\x00\x00\x00")]
    out += [b"\x00" * -(-components * blocks // 8)]  # one "0" per block
    bits = ("0" + "1" * 14) * -(-blocks // 32767)
    bits += "1" * (-len(bits) % 8)
    band = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)).replace(b"\xff", b"\xff\x00")
    for index in range(scans):
        successive = 0x10 if refine and index >= components else 0x00  # Ah=1, Al=0 after a first pass
        out += [_segment(0xDA, bytes((1, 1 + index % components, 0, 1, 63, successive))), band]
    return b"".join(out) + b"\xff\xd9"


def jpeg_with_segments(count: int) -> bytes:
    """A small JPEG with `count` empty comments before its image: each one a turn of a parser's loop."""
    data = jpeg()
    return data[:2] + _segment(0xFE, b"") * count + data[2:]


def jpeg_with_frame_marker(marker: int) -> bytes:
    """A small JPEG whose frame marker says another coding process (0xC9: arithmetic coding)."""
    data = bytearray(jpeg())
    position = data.index(b"\xff\xc0")
    data[position + 1] = marker
    return bytes(data)


def phone_photo(width: int = 4000, height: int = 3000) -> bytes:
    """A 12-megapixel baseline JPEG, about what a phone's camera writes (1.2 MB)."""
    ramp = Image.linear_gradient("L").resize((width, height))
    texture = Image.effect_noise((width // 10, height // 10), 60).resize((width, height))
    image = Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.FLIP_TOP_BOTTOM), texture))
    ImageDraw.Draw(image).ellipse((width // 8, height // 6, width // 2, height * 5 // 6), fill=(200, 30, 90))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif(6))
    return out.getvalue()


def _png_chunk(chunk_type: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body))
        + chunk_type
        + body
        + struct.pack(">I", zlib.crc32(body, zlib.crc32(chunk_type)))
    )


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_bomb(
    width: int,
    height: int,
    *,
    colour: int = 6,
    depth: int = 8,
    interlace: int = 0,
    rows: int | None = None,
    before_data: bytes = b"",
) -> bytes:
    """A PNG of `width` x `height` zeros: a zlib stream 1/200th of the pixels (65 MB in 300 KB).

    `rows`: the stream holds only that many rows (a header that lies about what follows).
    """
    row = 1 + (width * _PNG_CHANNELS[colour] * depth + 7) // 8
    size = row * (height if rows is None else rows)
    size += size // 3 if interlace else 0  # Adam7's passes hold more filter bytes; more is ignored
    stream = zlib.compressobj(1)
    zeros = bytes(1 << 20)
    data = [stream.compress(zeros[: min(len(zeros), size - done)]) for done in range(0, size, len(zeros))]
    data.append(stream.flush())
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    palette = _png_chunk(b"PLTE", bytes(range(256)) * 3) if colour == 3 else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + palette
        + before_data
        + _png_chunk(b"IDAT", b"".join(data))
        + _png_chunk(b"IEND", b"")
    )


def png_with_palette(entries: int) -> bytes:
    """A palette PNG whose PLTE holds `entries` colours (at most 256 are allowed)."""
    small = png_bomb(16, 16, colour=3)
    plte = small.index(b"PLTE") - 4
    end = plte + 12 + 768
    return small[:plte] + _png_chunk(b"PLTE", bytes(3 * entries)) + small[end:]


def png_with_chunks(count: int) -> bytes:
    """A small PNG with `count` empty private chunks before its data."""
    return png_bomb(16, 16, before_data=_png_chunk(b"prVt", b"") * count)


def png_with_text_bombs(count: int) -> bytes:
    """A small PNG with `count` zTXt chunks, each 1 MB of zeros in 1 KB (Pillow inflates up to 64 MB)."""
    bomb = zlib.compress(bytes(1 << 20), 9)
    return png_bomb(16, 16, before_data=_png_chunk(b"zTXt", b"Comment\x00\x00" + bomb) * count)


def apng(frames: int, size: tuple[int, int] = (64, 64)) -> bytes:
    """An animated PNG: the default image, then `frames - 1` frames after it."""
    images = [Image.new("RGB", size, (i % 256, 0, 255 - i % 256)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "PNG", save_all=True, append_images=images[1:], duration=10)
    return out.getvalue()


def animated_webp(frames: int) -> bytes:
    images = [Image.new("RGB", (64, 64), (i % 256, 0, 0)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "WEBP", save_all=True, append_images=images[1:], duration=10, lossless=True)
    return out.getvalue()


def animated_gif(frames: int) -> bytes:
    images = [Image.new("P", (64, 64), i % 256) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=10)
    return out.getvalue()


def _riff(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"WEBP" + b"".join(
        name + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) & 1) for name, data in chunks
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _vp8l_one_colour(width: int, height: int) -> bytes:
    """A VP8L bitstream of one colour: five prefix codes of one symbol each, so no bit per pixel."""
    value, count = 0, 0
    fields = [(0x2F, 8), (width - 1, 14), (height - 1, 14), (1, 1), (0, 3), (0, 1), (0, 1), (0, 1)]
    for symbol in (200, 10, 30, 255, 0):  # green, red, blue, alpha, distance
        fields += [(1, 1), (0, 1), (1, 1), (symbol, 8)]  # simple code, one symbol, 8 bits of it
    for field, bits in fields:
        value |= field << count
        count += bits
    return value.to_bytes(-(-count // 8), "little")


def lossless_webp(width: int, height: int) -> bytes:
    """A lossless WebP of `width` x `height` in 34 bytes (up to 16384 x 16384)."""
    return _riff([(b"VP8L", _vp8l_one_colour(width, height))])


def webp_with_canvas(canvas: tuple[int, int], image: tuple[int, int]) -> bytes:
    """An extended WebP whose VP8X canvas says one size and whose bitstream says another."""
    width, height = canvas
    header = b"\x10\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return _riff([(b"VP8X", header), (b"VP8L", _vp8l_one_colour(*image))])


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small JPEG whose frame header declares `width` x `height`."""
    data = bytearray(jpeg())
    frame = data.index(b"\xff\xc0") + 5
    data[frame : frame + 4] = struct.pack(">HH", height, width)
    return bytes(data)
