"""Cover image checks made before any model sees the bytes (header only: no pixel decoding)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from ensemble.config import Limits
from ensemble.errors import RequestError

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP"})


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str
    width: int
    height: int


def check_image(data: bytes, limits: Limits, *, field: str = "image") -> ImageInfo:
    """Format, size and integrity from the header; refuses bombs before they are decoded."""
    if not data:
        raise RequestError(field, "must not be empty")
    if len(data) > limits.max_image_bytes:
        raise RequestError(field, f"must be at most {limits.max_image_bytes} bytes", value=len(data))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Only the allowed formats' parsers read the bytes: the others never see untrusted input.
            with Image.open(io.BytesIO(data), formats=sorted(ALLOWED_FORMATS)) as image:
                fmt, (width, height) = image.format, image.size
                if width * height > limits.max_image_pixels:
                    raise RequestError(field, f"must have at most {limits.max_image_pixels} pixels",
                                       value=f"{width}x{height}")
                image.verify()
    except RequestError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RequestError(field, "is too large to decode safely", value=str(exc)[:60]) from None
    except UnidentifiedImageError:
        raise RequestError(field, f"must be an encoded image ({', '.join(sorted(ALLOWED_FORMATS))})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise RequestError(field, f"is not a readable image ({exc})") from None
    if min(width, height) < limits.min_image_side or max(width, height) > limits.max_image_side:
        raise RequestError(field, f"sides must be within [{limits.min_image_side}, {limits.max_image_side}] "
                           "pixels", value=f"{width}x{height}")
    return ImageInfo(fmt, width, height)


class CheckedImages:
    """`check_image` with a memory: digests (`ensemble.cover.grade_cache.image_key`) of the images that passed and
    their pixel counts, so a cover seen again, for the other task or in a later request (covers recur across
    queries, as the cover-grade cache counts on), is not parsed again. Bounded; emptied when full."""

    def __init__(self, limits: Limits, most: int = 4096) -> None:
        self.limits = limits
        self.most = most
        self._passed: dict[bytes, int] = {}

    def check(self, data: bytes, digest: bytes, *, field: str = "image") -> int:
        """The image's pixels; raises RequestError naming `field` when it breaks a limit."""
        pixels = self._passed.get(digest)
        if pixels is not None:
            return pixels
        info = check_image(data, self.limits, field=field)  # raises: a bad image is never remembered
        if len(self._passed) >= self.most:
            self._passed.clear()
        self._passed[digest] = pixels = info.width * info.height
        return pixels
