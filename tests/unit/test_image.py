import io

import pytest
from PIL import Image

from ensemble.config import PipelineConfig
from ensemble.errors import RequestError
from ensemble.cover.image import check_image

LIMITS = PipelineConfig.load().limits


def encoded(size=(64, 48), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_common_formats_pass(fmt):
    info = check_image(encoded(fmt=fmt), LIMITS)
    assert (info.format, info.width, info.height) == (fmt, 64, 48)


@pytest.mark.parametrize("data,rule", [
    (b"", "must not be empty"),
    (b"hello world", "must be an encoded image"),
    (encoded()[:-20], "is not a readable image"),
    (encoded()[:40], "must be an encoded image"),
    (encoded(fmt="TIFF"), r"must be an encoded image \(BMP, GIF, JPEG, PNG, WEBP\)"),
    (encoded(size=(2, 2)), "sides must be within"),
])
def test_bad_images_are_refused(data, rule):
    with pytest.raises(RequestError, match=rule) as info:
        check_image(data, LIMITS, field="cover_images[2]")
    assert info.value.field == "cover_images[2]"


def test_decompression_bomb_refused_from_header():
    limits = LIMITS.model_copy(update={"max_image_pixels": 100 * 100})
    with pytest.raises(RequestError, match="at most 10000 pixels"):
        check_image(encoded(size=(200, 200)), limits)


def test_oversized_bytes_refused():
    limits = LIMITS.model_copy(update={"max_image_bytes": 10})
    with pytest.raises(RequestError, match="at most 10 bytes"):
        check_image(encoded(), limits)


def test_parsers_of_formats_not_allowed_never_read_the_bytes(monkeypatch):
    from PIL import TiffImagePlugin

    def refuse(self):
        raise AssertionError("the TIFF parser read untrusted bytes")

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "_open", refuse)
    with pytest.raises(RequestError, match="must be an encoded image"):
        check_image(encoded(fmt="TIFF"), LIMITS)


def test_checked_images_parses_each_good_image_once_and_never_remembers_a_bad_one(monkeypatch):
    import ensemble.cover.image as image_module
    from ensemble.cover.grade_cache import image_key

    parsed = []
    real = image_module.check_image
    monkeypatch.setattr(image_module, "check_image", lambda data, *a, **k: parsed.append(data) or real(data, *a, **k))
    checked = image_module.CheckedImages(LIMITS, most=2)
    good, bad = encoded(), b"not an image"
    for _ in range(3):
        checked.check(good, image_key(good))
        with pytest.raises(RequestError, match="^cover_images\\[4\\] must be an encoded image"):
            checked.check(bad, image_key(bad), field="cover_images[4]")
    assert parsed == [good, bad, bad, bad]
    others = [encoded(size=(64, 49 + i)) for i in range(2)]
    for other in others:  # the third image fills the memory past its bound: it starts again
        checked.check(other, image_key(other))
    checked.check(good, image_key(good))
    assert parsed[4:] == [*others, good]
