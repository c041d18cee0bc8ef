"""Avatar images: recognised by their magic bytes, decoded within hard bounds, re-encoded without metadata.

Bytes in, bytes out. Every image is decoded and encoded again, never passed through, so what we store
is an image and nothing else: no EXIF (GPS position, camera serial), XMP, IPTC, comments or PNG text
chunks, nor anything smuggled after the image data (HTML/JS polyglots). The colour profile (ICC) is kept
when small, since dropping it shifts the colours of wide-gamut photos.

Bounded work, whatever the upload (at most 2 MiB): a decoder's time and memory follow what the file
declares, not its size (a progressive JPEG of 2 MiB can hold 100,000 scans, each a pass over every
block; a 34-byte WebP can declare 16384 x 16384 pixels). So, in two layers:

1. Before any decoder sees the file, its structure is read here (`_probe`): the dimensions each format
   declares, a decoded-size budget per format (what its decoder holds per pixel, measured), the JPEG
   coding process and number of scans, the PNG chunks (the PNG is rebuilt from the few chunks that make
   its pixels: no text chunks to inflate, no APNG frames), WebP animation. What fails is refused at once.
2. Decoding and encoding run in a child process under hard limits (`shared/sandbox.py`): CPU time,
   address space and wall time, enforced by the kernel. Whatever a decoder does with an input that
   passes layer 1, the upload is answered within `WORK_LIMITS`.

Large images are scaled down to `MAX_OUTPUT_SIDE` (a JPEG is decoded at a reduced scale by libjpeg
itself), so encoding is bounded too. Fidelity below that size: PNG and lossless WebP come back pixel for
pixel; JPEG is re-encoded with its own quantization tables and chroma subsampling, so a second generation
differs from the first by a level or two at most; lossy WebP is re-encoded at high quality. EXIF
orientation is applied to the pixels before the tag is dropped, so a phone photo still shows upright.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import warnings
import zlib
from dataclasses import dataclass
from functools import partial
from typing import Any

from PIL import (
    Image,
    ImageOps,
    JpegImagePlugin,
    MpoImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from shared.errors import Reason, ServiceError
from shared.sandbox import LimitExceeded, Limits, run_confined

logger = logging.getLogger(__name__)

MAX_AVATAR_BYTES = 2 * 1024 * 1024
# Declared dimensions, checked before any pixel is decoded: a 2 MiB file can claim 65535 x 65535.
# 4096 x 4096 is far beyond any avatar and still takes a 12-megapixel phone photo (4000 x 3000).
MAX_PIXELS = 4096 * 4096
MAX_SIDE = 8192
# What decoding may hold at its peak, estimated from the header (`_Probe.decode_bytes`). Per pixel,
# measured with Pillow 12 (ru_maxrss): PNG 8 bytes (Pillow's storage, 4, and a premultiplied copy to
# scale an RGBA image down); WebP 18 (libwebp's animation decoder, which Pillow uses for every WebP,
# keeps two RGBA canvases besides its own and Pillow's, and an RGBA image is scaled premultiplied);
# JPEG 4 for the output at its reduced scale, plus for a progressive JPEG 2 per sample of each component
# (libjpeg keeps every DCT coefficient until the last scan).
DECODE_BUDGET = 160 * 1024 * 1024
PNG_BYTES_PER_PIXEL = 8
WEBP_BYTES_PER_PIXEL = 18
JPEG_BYTES_PER_PIXEL = 4
JPEG_COEFFICIENT_BYTES_PER_SAMPLE = 2
# libjpeg writes 10 scans for a colour progressive JPEG, 6 for grey, 18 for CMYK; each scan is a pass
# over all blocks of its components, and a crafted file can hold one per 10 bytes.
MAX_JPEG_SCANS = 32
# Markers, scans included: a photo has 10-60 (EXIF, XMP, ICC in pieces, tables, scans).
MAX_JPEG_SEGMENTS = 512
# Chunks of a PNG: encoders split the image data into 8-64 KiB chunks; APNG frames add more.
MAX_PNG_CHUNKS = 8192
MAX_WEBP_CHUNKS = 64
# The stored avatar's longest side: a profile shows it at 132 px, a poster at a few hundred.
MAX_OUTPUT_SIDE = 1024
# The decoding child's limits. The whole upload (probe, fork, decode, encode) stays under 3 s of CPU and
# 256 MB above the process's baseline; the largest images within the checks above take under a second
# and at most two thirds of the memory (tests/unit/test_image_bounds.py measures both).
WORK_LIMITS = Limits(
    cpu_seconds=2.0, memory_bytes=240 * 1024 * 1024, wall_seconds=8.0, max_output_bytes=16 * 1024 * 1024
)
MAX_ICC_BYTES = 64 * 1024
LOSSY_WEBP_QUALITY = 90
FALLBACK_JPEG_QUALITY = 90

_PILLOW_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
_CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
_EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}
ACCEPTED = "JPEG, PNG, WebP"
TOO_LARGE_MESSAGE = f"头像文件过大 (上限 {MAX_AVATAR_BYTES // (1024 * 1024)} MiB)"
CORRUPT_MESSAGE = "图片已损坏或无法解码"
TOO_COMPLEX_MESSAGE = "图片结构过于复杂, 无法处理"
ANIMATED_MESSAGE = "不支持动图"

# The child's answer: b"A", the width and height, then the encoded image; or b"R" (not decodable).
_ACCEPTED_HEADER = struct.Struct(">cII")
_NOT_DECODABLE = b"R"


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


@dataclass(frozen=True)
class _Probe:
    """What the file's structure says, read without decoding a pixel."""

    kind: str
    width: int
    height: int
    decode_bytes: int  # the decoder's estimated peak memory
    data: bytes  # what the decoder is given
    lossless: bool = False  # a WebP's VP8L bitstream


def sniff(data: bytes) -> str | None:
    """The image type by magic bytes ("jpeg", "png", "webp"), or None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(_PNG_SIGNATURE):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _rejected(message: str) -> ServiceError:
    return ServiceError(Reason.CONTENT_REJECTED, message)


def clean_avatar(data: bytes, limits: Limits = WORK_LIMITS) -> CleanImage:
    """Validate an uploaded avatar and re-encode it without metadata, scaled down to `MAX_OUTPUT_SIDE`.

    PAYLOAD_TOO_LARGE over 2 MiB; CONTENT_REJECTED when empty, not a JPEG/PNG/WebP by its magic bytes,
    too many pixels, animated, too complex to decode within `limits`, or not decodable as the type it
    claims.
    """
    if len(data) > MAX_AVATAR_BYTES:
        raise ServiceError(Reason.PAYLOAD_TOO_LARGE, TOO_LARGE_MESSAGE)
    if not data:
        raise _rejected("头像文件为空")
    kind = sniff(data)
    if kind is None:
        raise _rejected(f"不支持的图片格式 (仅支持 {ACCEPTED})")
    probe = _PROBES[kind](data)
    if probe.decode_bytes > DECODE_BUDGET:
        raise _rejected(_dimensions_message(kind))
    Image.preinit()  # Pillow's first save would import these plugins: here once, not in every child
    try:
        answer = run_confined(partial(_decode_and_encode, probe), limits)
    except LimitExceeded as exc:
        # Worth an operator's look (one user repeating it is an attack); nothing of the image is logged.
        logger.warning("avatar image refused: decoding hit its %s", exc.why)
        raise _rejected(TOO_COMPLEX_MESSAGE) from exc
    return _unpack(answer, probe.kind)


def _check_dimensions(width: int, height: int) -> None:
    if width < 1 or height < 1 or width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise _rejected(_dimensions_message())


def _dimensions_message(kind: str | None = None) -> str:
    # A WebP's decoder holds 18 bytes a pixel: its budget allows fewer pixels than the others'.
    pixels = DECODE_BUDGET // WEBP_BYTES_PER_PIXEL if kind == "webp" else MAX_PIXELS
    return f"图片尺寸过大 (上限 {pixels} 像素, 每边 {MAX_SIDE})"


def output_size(width: int, height: int) -> tuple[int, int]:
    """The stored size of a `width` x `height` image: scaled down to fit `MAX_OUTPUT_SIDE`, else as is."""
    longest = max(width, height)
    if longest <= MAX_OUTPUT_SIDE:
        return width, height
    return max(1, round(width * MAX_OUTPUT_SIDE / longest)), max(1, round(height * MAX_OUTPUT_SIDE / longest))


# --- Layer 1: structure, read before decoding -------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start of frame markers libjpeg-turbo decodes with the 8-bit API Pillow uses: baseline, extended
# sequential and progressive, Huffman-coded. Refused: arithmetic coding (when a scan's data runs out its
# decoder goes on decoding zeros through every block, where the Huffman decoder skips them), lossless
# and hierarchical JPEG. No phone writes them.
_JPEG_FRAMES = {0xC0: False, 0xC1: False, 0xC2: True}  # marker: progressive
_JPEG_OTHER_FRAMES = frozenset(range(0xC3, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset((0x01, *range(0xD0, 0xD8)))  # TEM, RSTn: no length
_JPEG_SOS, _JPEG_EOI, _JPEG_SOI = 0xDA, 0xD9, 0xD8
# The next marker after entropy-coded data: 0xFF then neither a stuffed 0x00, a restart marker nor fill.
_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# The next marker between segments: fill bytes 0xFF, then any code but a stuffed 0x00.
_JPEG_MARKER = re.compile(rb"\xff+([^\x00\xff])")


def _probe_jpeg(data: bytes) -> _Probe:
    frame: tuple[bool, int, int, list[tuple[int, int]]] | None = None  # progressive, width, height, sampling
    scans = markers = 0
    position = 2
    while position < len(data):
        # Every marker counts, whatever follows it: each is a turn of this loop.
        markers += 1
        if markers > MAX_JPEG_SEGMENTS:
            raise _rejected(TOO_COMPLEX_MESSAGE)
        # A marker: 0xFF, any number of fill bytes 0xFF, the code. Anything else is skipped as libjpeg does.
        found = _JPEG_MARKER.search(data, position)
        if found is None:
            break
        marker = found.group(1)[0]
        position = found.end()
        if marker == _JPEG_EOI:
            break
        if marker in _JPEG_STANDALONE:
            continue
        if marker == _JPEG_SOI or position + 2 > len(data):
            raise _rejected(CORRUPT_MESSAGE)
        length = int.from_bytes(data[position : position + 2], "big")
        body = data[position + 2 : position + length]
        if length < 2 or len(body) != length - 2:
            raise _rejected(CORRUPT_MESSAGE)
        position += length
        if marker in _JPEG_FRAMES:
            if frame is not None:
                raise _rejected(CORRUPT_MESSAGE)
            frame = _jpeg_frame(body, progressive=_JPEG_FRAMES[marker])
        elif marker in _JPEG_OTHER_FRAMES:
            raise _rejected(f"不支持的 JPEG 编码 (仅支持 baseline 与 progressive, 不支持 SOF{marker - 0xC0})")
        elif marker == _JPEG_SOS:
            scans += 1
            if frame is None:
                raise _rejected(CORRUPT_MESSAGE)
            if scans > MAX_JPEG_SCANS:
                raise _rejected(TOO_COMPLEX_MESSAGE)
            found = _JPEG_NEXT_MARKER.search(data, position)
            if found is None:
                break  # truncated inside the scan: the decoder says so
            position = found.start()
    if frame is None:
        raise _rejected(CORRUPT_MESSAGE)
    progressive, width, height, sampling = frame
    _check_dimensions(width, height)
    scale = _jpeg_scale(width, height)
    output = -(-width // scale) * -(-height // scale) * JPEG_BYTES_PER_PIXEL
    coefficients = 0
    if progressive or scans > 1:  # every coefficient is kept until the last scan
        max_h = max(h for h, _ in sampling)
        max_v = max(v for _, v in sampling)
        for h, v in sampling:
            # Blocks of 8 x 8 samples, padded to whole MCUs.
            columns = -(-width * h // (8 * max_h))
            rows = -(-height * v // (8 * max_v))
            coefficients += (
                (-(-columns // h) * h) * (-(-rows // v) * v) * 64 * JPEG_COEFFICIENT_BYTES_PER_SAMPLE
            )
    return _Probe("jpeg", width, height, output + coefficients, data)


def _jpeg_frame(body: bytes, *, progressive: bool) -> tuple[bool, int, int, list[tuple[int, int]]]:
    if len(body) < 6:
        raise _rejected(CORRUPT_MESSAGE)
    precision, height, width, count = struct.unpack(">BHHB", body[:6])
    # Pillow reads 1 (grey), 3 (YCbCr, RGB) and 4 (CMYK, YCCK) components, 8 bits each; a height of 0
    # (given later by a DNL marker) libjpeg-turbo does not support.
    if precision != 8 or count not in (1, 3, 4) or len(body) < 6 + 3 * count or height == 0 or width == 0:
        raise _rejected(CORRUPT_MESSAGE)
    sampling = []
    for index in range(count):
        factors = body[6 + 3 * index + 1]
        h, v = factors >> 4, factors & 0x0F
        if not (1 <= h <= 4 and 1 <= v <= 4):
            raise _rejected(CORRUPT_MESSAGE)
        sampling.append((h, v))
    return progressive, width, height, sampling


def _jpeg_scale(width: int, height: int) -> int:
    """The reduced scale libjpeg decodes at for our output size (Pillow's `draft()`: 1, 2, 4 or 8)."""
    target_width, target_height = output_size(width, height)
    ratio = min(width // target_width, height // target_height)
    return next(scale for scale in (8, 4, 2, 1) if ratio >= scale)


# PNG colour types and the bit depths each allows.
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# The chunks kept, besides IHDR, IDAT and IEND: palette, transparency, colour profile, EXIF (orientation).
_PNG_KEPT = (b"iCCP", b"PLTE", b"tRNS", b"eXIf")


def _probe_png(data: bytes) -> _Probe:
    """Check a PNG's chunks and rebuild it from those that make its pixels, its IDAT data in one chunk.

    Dropped: text chunks (zTXt/iTXt would be inflated, up to 64 MB in Pillow), APNG's frames (what is left
    is the default image, what any PNG decoder shows), and every other ancillary chunk.
    """
    header: bytes | None = None
    kept: dict[bytes, bytes] = {}
    image_data: list[bytes] = []
    image_data_ended = False
    position = len(_PNG_SIGNATURE)
    for count in range(MAX_PNG_CHUNKS + 1):
        if count == MAX_PNG_CHUNKS:
            raise _rejected(TOO_COMPLEX_MESSAGE)
        if position + 12 > len(data):
            if image_data:
                break  # no IEND after the image data: Pillow reads such files, so do we
            raise _rejected(CORRUPT_MESSAGE)
        length = int.from_bytes(data[position : position + 4], "big")
        chunk_type = data[position + 4 : position + 8]
        end = position + 8 + length
        if length > 0x7FFFFFFF or end + 4 > len(data) or not chunk_type.isalpha():
            raise _rejected(CORRUPT_MESSAGE)
        body = data[position + 8 : end]
        if zlib.crc32(body, zlib.crc32(chunk_type)) != int.from_bytes(data[end : end + 4], "big"):
            raise _rejected(CORRUPT_MESSAGE)
        position = end + 4
        if header is None:
            if chunk_type != b"IHDR" or length != 13:
                raise _rejected(CORRUPT_MESSAGE)
            header = body
        elif chunk_type == b"IDAT":
            if image_data_ended:
                raise _rejected(CORRUPT_MESSAGE)  # IDAT chunks must follow each other
            image_data.append(body)
        elif chunk_type == b"IEND":
            break
        elif image_data:
            image_data_ended = True
        if chunk_type in _PNG_KEPT and chunk_type not in kept:
            kept[chunk_type] = body
        elif chunk_type[:1].isupper() and chunk_type not in (b"IHDR", b"IDAT", b"IEND", b"PLTE"):
            raise _rejected(CORRUPT_MESSAGE)  # an unknown critical chunk
    if header is None or not image_data:
        raise _rejected(CORRUPT_MESSAGE)
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", header)
    if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filtering or interlace > 1:
        raise _rejected(CORRUPT_MESSAGE)
    palette = kept.get(b"PLTE")
    if palette is not None and (len(palette) % 3 or len(palette) > 3 * 256):
        raise _rejected(CORRUPT_MESSAGE)
    _check_dimensions(width, height)
    chunks = [(b"IHDR", header), *((name, kept[name]) for name in _PNG_KEPT if name in kept)]
    chunks += [(b"IDAT", b"".join(image_data)), (b"IEND", b"")]
    rebuilt = _PNG_SIGNATURE + b"".join(_png_chunk(name, body) for name, body in chunks)
    return _Probe("png", width, height, width * height * PNG_BYTES_PER_PIXEL, rebuilt)


def _png_chunk(chunk_type: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(body, zlib.crc32(chunk_type))
    return struct.pack(">I", len(body)) + chunk_type + body + struct.pack(">I", crc)


_WEBP_ANIMATION_FLAG = 0x02


def _probe_webp(data: bytes) -> _Probe:
    end = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    canvas: tuple[int, int] | None = None
    image: tuple[int, int, bool] | None = None  # width, height, lossless
    position = 12
    for count in range(MAX_WEBP_CHUNKS + 1):
        if position + 8 > end:
            break
        if count == MAX_WEBP_CHUNKS:
            raise _rejected(TOO_COMPLEX_MESSAGE)
        fourcc = data[position : position + 4]
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        body = data[position + 8 : min(position + 8 + size, end)]
        position += 8 + size + (size & 1)
        if fourcc == b"VP8X" and len(body) >= 10:
            if body[0] & _WEBP_ANIMATION_FLAG:
                raise _rejected(ANIMATED_MESSAGE)
            canvas = 1 + int.from_bytes(body[4:7], "little"), 1 + int.from_bytes(body[7:10], "little")
        elif fourcc in (b"ANIM", b"ANMF"):
            raise _rejected(ANIMATED_MESSAGE)
        elif fourcc in (b"VP8 ", b"VP8L"):
            if image is not None:
                raise _rejected(CORRUPT_MESSAGE)
            image = _webp_bitstream_size(fourcc, body)
    if image is None:
        raise _rejected(CORRUPT_MESSAGE)
    width, height, lossless = image
    for side_width, side_height in (image[:2], canvas or image[:2]):
        _check_dimensions(side_width, side_height)
    width, height = max(width, (canvas or image)[0]), max(height, (canvas or image)[1])
    return _Probe("webp", width, height, width * height * WEBP_BYTES_PER_PIXEL, data, lossless=lossless)


def _webp_bitstream_size(fourcc: bytes, body: bytes) -> tuple[int, int, bool]:
    if fourcc == b"VP8L":
        if len(body) < 5 or body[0] != 0x2F:
            raise _rejected(CORRUPT_MESSAGE)
        bits = int.from_bytes(body[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, True
    # A key frame: a 3-byte frame tag, the start code, then 14 bits of width and of height.
    if len(body) < 10 or body[0] & 1 or body[3:6] != b"\x9d\x01\x2a":
        raise _rejected(CORRUPT_MESSAGE)
    width, height = (
        int.from_bytes(body[6:8], "little") & 0x3FFF,
        int.from_bytes(body[8:10], "little") & 0x3FFF,
    )
    if not width or not height:
        raise _rejected(CORRUPT_MESSAGE)
    return width, height, False


_PROBES = {"jpeg": _probe_jpeg, "png": _probe_png, "webp": _probe_webp}


# --- Layer 2: decoding and encoding, in the confined child ------------------------------------------------


def _unpack(answer: bytes, kind: str) -> CleanImage:
    if len(answer) < _ACCEPTED_HEADER.size or answer[:1] != b"A":
        raise _rejected(CORRUPT_MESSAGE)
    _, width, height = _ACCEPTED_HEADER.unpack_from(answer)
    return CleanImage(answer[_ACCEPTED_HEADER.size :], kind, width, height)


def _decode_and_encode(probe: _Probe) -> bytes:
    """The child's work: the answer `_unpack` reads."""
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns below its hard limit; ours is stricter and ran first.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with _open(probe) as source:
                if source.size != (probe.width, probe.height):
                    return _NOT_DECODABLE  # the container and the bitstream disagree
                image = _reencode(source, probe)
    except MemoryError:
        raise  # the child's memory limit: reported as such
    except Exception:
        # Truncated or corrupt data, or a header that lies about the type (UnidentifiedImageError, OSError,
        # SyntaxError, struct.error from a plugin's parser...): never echo the parser's text.
        return _NOT_DECODABLE
    return _ACCEPTED_HEADER.pack(b"A", image.width, image.height) + image.content


def _open(probe: _Probe) -> Image.Image:
    """The plugin's image file, without `Image.open`'s search through every format Pillow knows."""
    stream = io.BytesIO(probe.data)
    if probe.kind == "jpeg":
        return JpegImagePlugin.jpeg_factory(stream)
    if probe.kind == "png":
        return PngImagePlugin.PngImageFile(stream)
    return WebPImagePlugin.WebPImageFile(stream)


def _reencode(source: Image.Image, probe: _Probe) -> CleanImage:
    kind = probe.kind
    target = output_size(*source.size)
    if kind == "jpeg" and target != source.size:
        source.draft(None, target)  # libjpeg decodes at 1/2, 1/4 or 1/8 scale: less work, less memory
    source.load()
    icc = source.info.get("icc_profile")
    jpeg_tables = _jpeg_tables(source) if kind == "jpeg" else None
    image = _scaled(source, target)
    image = ImageOps.exif_transpose(image) or image
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
        options.update(
            {"lossless": True, "exact": True} if probe.lossless else {"quality": LOSSY_WEBP_QUALITY}
        )

    # Everything Pillow read besides the pixels (exif, xmp, comment, text chunks, dpi) is forgotten,
    # so no encoder can copy it into the output. (After convert(), which reads "transparency".)
    image.info = {}
    output = io.BytesIO()
    image.save(output, format=_PILLOW_FORMATS[kind], **options)
    return CleanImage(output.getvalue(), kind, image.width, image.height)


def _scaled(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` at `size`, or itself when it is that size already.

    Averaged down by a whole factor first (a box filter, cheap), then Lanczos for the rest: Lanczos
    straight from 4096 to 1024 px weighs 24 source pixels per axis for each output pixel. Transparent
    images are scaled premultiplied, so the colour of invisible pixels does not bleed into the edges.
    """
    if image.size == size:
        return image
    if image.mode == "P":
        # Resampling a palette image picks pixels; in colour it averages them.
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    mode = image.mode
    premultiplied = _PREMULTIPLIED.get(mode)
    if premultiplied:
        image = image.convert(premultiplied)
    factor = min(image.width // size[0], image.height // size[1]) // 2
    if factor >= 2 and image.mode != "I;16":  # Pillow cannot reduce I;16
        image = image.reduce(factor)
    image = image.resize(size, Image.Resampling.LANCZOS)
    return image.convert(mode) if premultiplied else image


_PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}


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


# Imported for their side effects before any fork: registered with Pillow, so the child imports nothing
# (MPO: a JPEG with several images becomes one; TIFF: EXIF is read with its tag tables).
_PLUGINS = (MpoImagePlugin, TiffImagePlugin)
