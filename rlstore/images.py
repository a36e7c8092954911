"""Images kept as they came, and the encoding chosen for raw ones.

Robot datasets (Open X-Embodiment style RLDS) ship camera frames already JPEG-encoded.
Decoding them at ingest and encoding them again would change their bytes (JPEG is lossy, and a
PNG of a decoded JPEG is several times larger), so such a column travels through ingest as
`EncodedImages`: the source's bytes, one per step, with the format and per-image shape, and
is written to the store byte for byte. Raw uint8 images are encoded with the field's chosen
`ImageEncoding`: PNG (the default, lossless), JPEG at a quality, or zlib-compressed raw bytes.

Checks: at ingest every encoded image's header is read (format, height, width; a few µs, no
decoding); `validate` decodes every image (`undecodable`), so a JPEG that does not decode is
found there, naming file, episode, step and field, and not by a learner.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rlstore.errors import BadInputError, Location

IMAGE_FORMATS = ("png", "jpeg")  # what TFDS's Image feature stores
RAW_IMAGE_ENCODINGS = ("png", "jpeg", "zlib")
DEFAULT_JPEG_QUALITY = 95
_MAGIC = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpeg"}


def sniff(data: bytes) -> str | None:
    """'png' or 'jpeg' from an image's first bytes, else None."""
    for magic, name in _MAGIC.items():
        if data[:len(magic)] == magic:
            return name
    return None


class EncodedImages(np.ndarray):
    """A step column of images as the source encoded them: a [T] object array of `bytes`, plus
    the format ('png' or 'jpeg') and the shape one image decodes to. Slicing keeps both."""

    image_format: str
    image_shape: tuple[int, ...]

    def __new__(cls, data: Sequence[bytes], image_format: str, image_shape: Sequence[int]) -> "EncodedImages":
        array = np.empty(len(data), dtype=object)
        array[:] = list(data)
        column = array.view(cls)
        column.image_format = image_format
        column.image_shape = tuple(int(d) for d in image_shape)
        return column

    def __array_finalize__(self, source) -> None:
        self.image_format = getattr(source, "image_format", None)
        self.image_shape = getattr(source, "image_shape", ())

    def __reduce__(self):
        return EncodedImages, (list(self), self.image_format, self.image_shape)


def check_headers(column: EncodedImages, encoding: str, shape: Sequence[int], where: Location) -> None:
    """Raises BadInputError, naming the step, unless every image of `column` is in `encoding`
    and its header gives the field's height and width (no pixel is decoded)."""
    from PIL import Image, UnidentifiedImageError

    for step, data in enumerate(column):
        here = where.at(step=step)
        found = sniff(data) if isinstance(data, bytes) else None
        if found is None:
            raise BadInputError("image bytes are neither PNG nor JPEG", here)
        if found != encoding:
            raise BadInputError(f"image is {found.upper()}, the field stores {encoding.upper()} "
                                "(images are kept as the source encoded them)", here)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise BadInputError(f"{encoding.upper()} header does not read: {error}", here) from None
        if (height, width) != tuple(shape[:2]):
            raise BadInputError(f"image is {height}x{width}, the field's images are {shape[0]}x{shape[1]}", here)


def undecodable(column: Sequence[bytes], shape: Sequence[int]) -> tuple[int, str] | None:
    """(step, reason) of the first image that TensorFlow's decoder (the one TFDS and rlstore's
    readers use) cannot decode to `shape`, or None."""
    for step, data in enumerate(column):
        try:
            _decoded(data, shape)
        except ValueError as error:
            return step, str(error)
    return None


def decode_png(column: EncodedImages, where: Location) -> np.ndarray:
    """A column of PNG images decoded to one uint8 array [T, *image_shape], as stock TFDS decodes
    them (PNG is lossless: nothing is lost). Raises BadInputError naming the step of an image
    that does not decode to the column's shape."""
    pixels = np.empty((len(column), *column.image_shape), np.uint8)
    for step, data in enumerate(column):
        try:
            pixels[step] = _decoded(data, column.image_shape).numpy()
        except ValueError as error:
            raise BadInputError(str(error), where.at(step=step)) from None
    return pixels


def _decoded(data: bytes, shape: Sequence[int]):
    """One image decoded by TensorFlow's decoder, as a tensor of `shape`; ValueError saying why not."""
    import tensorflow as tf

    from rlstore.tfds_episodes import tf_error_reason

    try:
        pixels = tf.io.decode_image(data, channels=int(shape[-1]), expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        raise ValueError(f"image does not decode: {tf_error_reason(error)}") from None
    if tuple(pixels.shape) != tuple(shape):
        raise ValueError(f"image decodes to {list(pixels.shape)}, the field's shape is {list(shape)}")
    return pixels


@dataclass(frozen=True)
class ImageEncoding:
    """How a raw uint8 image field is stored: 'png', 'jpeg' (with `quality`) or 'zlib'."""

    encoding: str
    quality: int | None = None

    @classmethod
    def parse(cls, text: str) -> "ImageEncoding":
        """'png', 'zlib', 'jpeg' or 'jpeg:Q' (Q in 1..100; default 95)."""
        name, _, quality = text.strip().lower().partition(":")
        if name not in RAW_IMAGE_ENCODINGS:
            raise BadInputError(f"unknown image encoding {text!r}: use png, jpeg, jpeg:QUALITY or zlib")
        if name != "jpeg":
            if quality:
                raise BadInputError(f"image encoding {name} takes no quality, got {text!r}")
            return cls(name)
        if not quality:
            return cls("jpeg", DEFAULT_JPEG_QUALITY)
        if not quality.isdigit() or not 1 <= int(quality) <= 100:
            raise BadInputError(f"JPEG quality must be an integer from 1 to 100, got {text!r}")
        return cls("jpeg", int(quality))


def image_encoding_args(items: Sequence[str]) -> dict[str, str]:
    """Command-line `[FIELD=]ENCODING` items as `ingest`'s `image_encodings` mapping (a bare
    ENCODING is key '*': every other image field), e.g. ['observation/wrist=jpeg:90', 'zlib']."""
    encodings: dict[str, str] = {}
    for item in items:
        field, _, encoding = item.rpartition("=")
        encodings[field.strip() or "*"] = encoding
    return encodings


def encode_image(pixels: np.ndarray, encoding: str, quality: int | None) -> bytes:
    """One raw [H, W, C] uint8 image as PNG or JPEG bytes (Pillow)."""
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    if encoding == "png":
        image.save(buffer, format="PNG", compress_level=1)
    else:
        image.save(buffer, format="JPEG", quality=quality or DEFAULT_JPEG_QUALITY)
    return buffer.getvalue()
