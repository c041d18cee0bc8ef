"""Avatar images: recognised by their magic bytes, decoded within limits, re-encoded without metadata.

Pure: bytes in, bytes out. Every image is decoded and encoded again, never passed through, so what
we store is an image and nothing else: no EXIF (GPS position, camera serial), XMP, IPTC, comments or
PNG text chunks, nor anything smuggled after the image data (HTML/JS polyglots). The colour profile
(ICC) is kept when small, since dropping it shifts the colours of wide-gamut photos.

Fidelity: PNG and lossless WebP come back pixel for pixel. JPEG is re-encoded with its own
quantization tables and chroma subsampling, so a second generation differs from the first by a level
or two at most; lossy WebP is re-encoded at high quality. EXIF orientation is applied to the pixels
before the tag is dropped, so a phone photo still shows upright.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from shared.errors import Reason, ServiceError

MAX_AVATAR_BYTES = 2 * 1024 * 1024
# Decompression-bomb limits, checked from the header before any pixel is decoded: a 2 MiB file can
# claim 65535 x 65535 pixels. 4096 x 4096 is far beyond any avatar and keeps an RGBA decode < 70 MB.
MAX_PIXELS = 4096 * 4096
MAX_SIDE = 8192
MAX_ICC_BYTES = 64 * 1024
LOSSY_WEBP_QUALITY = 90
FALLBACK_JPEG_QUALITY = 90

# Pillow's plugin names; only these decoders ever see an upload.
_PILLOW_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
_CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
_EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}
ACCEPTED = "JPEG, PNG, WebP"
TOO_LARGE_MESSAGE = f"头像文件过大 (上限 {MAX_AVATAR_BYTES // (1024 * 1024)} MiB)"


@dataclass(frozen=True)
class CleanImage:
    """A re-encoded image, ready to store."""

    content: bytes
    kind: str  # "jpeg", "png" or "webp"
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self.kind]

    @property
    def extension(self) -> str:
        return _EXTENSIONS[self.kind]


def sniff(data: bytes) -> str | None:
    """The image type by magic bytes ("jpeg", "png", "webp"), or None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _rejected(message: str) -> ServiceError:
    return ServiceError(Reason.CONTENT_REJECTED, message)


def clean_avatar(data: bytes) -> CleanImage:
    """Validate an uploaded avatar and re-encode it without metadata.

    PAYLOAD_TOO_LARGE over 2 MiB; CONTENT_REJECTED when empty, not a JPEG/PNG/WebP by its magic bytes,
    too many pixels, or not decodable as the type it claims.
    """
    if len(data) > MAX_AVATAR_BYTES:
        raise ServiceError(Reason.PAYLOAD_TOO_LARGE, TOO_LARGE_MESSAGE)
    if not data:
        raise _rejected("头像文件为空")
    kind = sniff(data)
    if kind is None:
        raise _rejected(f"不支持的图片格式 (仅支持 {ACCEPTED})")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns below its hard limit; ours is stricter and runs first.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[kind]]) as image:
                _check_dimensions(image.size)
                return _reencode(image, kind, lossless=kind == "webp" and _is_lossless_webp(data))
    except ServiceError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        # Truncated or corrupt data, or a header that lies about the type: never echo the parser's text.
        raise _rejected("图片已损坏或无法解码") from exc


def _check_dimensions(size: tuple[int, int]) -> None:
    width, height = size
    if width < 1 or height < 1 or width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise _rejected(f"图片尺寸过大 (上限 {MAX_PIXELS} 像素, 每边 {MAX_SIDE})")


def _reencode(source: Image.Image, kind: str, *, lossless: bool) -> CleanImage:
    source.load()
    icc = source.info.get("icc_profile")
    jpeg_tables = _jpeg_tables(source) if kind == "jpeg" else None
    image = ImageOps.exif_transpose(source)
    transparency = image.info.get("transparency")
    options: dict[str, Any] = {}
    if isinstance(icc, bytes) and len(icc) <= MAX_ICC_BYTES:
        options["icc_profile"] = icc

    if kind == "jpeg":
        if image.mode in ("L", "RGB") and jpeg_tables is not None:
            options.update(jpeg_tables)
        else:
            # CMYK/YCCK JPEGs: phones render them badly; RGB at a high quality instead.
            image = image.convert("RGB")
            options["quality"] = FALLBACK_JPEG_QUALITY
            options.pop("icc_profile", None)
    elif kind == "png":
        if transparency is not None:
            # A tRNS colour key: made explicit as alpha rather than carried over as an ancillary chunk.
            image = image.convert("RGBA")
        elif image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
            image = image.convert("RGBA")
    else:
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.mode or transparency is not None else "RGB")
        options.update({"lossless": True, "exact": True} if lossless else {"quality": LOSSY_WEBP_QUALITY})

    # Everything Pillow read besides the pixels (exif, xmp, comment, text chunks, dpi) is forgotten,
    # so no encoder can copy it into the output. (After convert(), which reads "transparency".)
    image.info = {}
    output = io.BytesIO()
    image.save(output, format=_PILLOW_FORMATS[kind], **options)
    return CleanImage(output.getvalue(), kind, image.width, image.height)


def _jpeg_tables(image: Image.Image) -> dict[str, Any] | None:
    """The source's quantization tables and subsampling: re-encoding with them loses next to nothing."""
    if not isinstance(image, JpegImagePlugin.JpegImageFile):
        return None
    tables = getattr(image, "quantization", None)
    if not tables:
        return None
    subsampling = JpegImagePlugin.get_sampling(image)
    options: dict[str, Any] = {"qtables": tables}
    if subsampling != -1:
        options["subsampling"] = subsampling
    return options


def _is_lossless_webp(data: bytes) -> bool:
    """Whether a WebP holds a VP8L (lossless) bitstream rather than VP8 (lossy)."""
    # Chunks start at offset 12 (after RIFF size WEBP): a simple file is one chunk, an extended one
    # (VP8X) lists its chunks in order; the image chunk is VP8L or VP8.
    offset = 12
    while offset + 8 <= len(data):
        fourcc = data[offset : offset + 4]
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        if fourcc == b"VP8L":
            return True
        if fourcc in (b"VP8 ", b"ANMF"):
            return False
        offset += 8 + size + (size & 1)
    return False
