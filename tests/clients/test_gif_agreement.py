"""GIF, which the server's OpenCV cannot decode: ``groups pull``, ``infer``/``segments build`` (the
bytes they send) and the server's decode refuse it with one reason, whatever the file is named; the
formats every command lists are the contract's, and each of them decodes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from clients.groups import download as group_download
from clients.groups.download import FetchError, check_picture, sniff_suffix
from clients.triton.image_sources import ImageItem, no_images_error
from clients.triton.request_loop import read_image
from segcontract import image_files
from segcontract.image_files import IMAGE_SUFFIXES, image_paths
from segops import decode
from segops.decode import GIF_REFUSED, ImageDecodeError, decode_image


def _image() -> np.ndarray:
    image = np.zeros((12, 16, 3), np.uint8)
    image[3:9, 4:12] = (30, 160, 240)
    return image


def _gif() -> bytes:
    ok, data = cv2.imencode(".gif", _image())  # this OpenCV (the client's) writes GIF
    assert ok
    return data.tobytes()


def test_a_gif_is_refused_with_one_reason_by_pull_infer_and_the_server(tmp_path):
    data = _gif()
    for name in ("still.gif", "still.jpg"):  # its content decides, not its name
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError) as read:
            read_image(ImageItem(path, path.relative_to(tmp_path)))
        with pytest.raises(FetchError) as pulled:
            check_picture(data, None, ".gif")
        with pytest.raises(ImageDecodeError) as served:
            decode_image(data)
        assert str(read.value) == str(pulled.value) == str(served.value) == GIF_REFUSED
    assert GIF_REFUSED.startswith("a GIF, which segstack does not read") and "ffmpeg" in GIF_REFUSED


def test_every_listed_suffix_decodes_and_gif_is_not_one_of_them(tmp_path):
    assert ".gif" not in IMAGE_SUFFIXES
    for suffix in sorted(IMAGE_SUFFIXES):
        ok, data = cv2.imencode(suffix, _image())
        assert ok, suffix
        assert decode_image(data.tobytes()).shape == (12, 16, 3), suffix
        picture = check_picture(data.tobytes(), None, None)
        assert (picture.height, picture.width) == (12, 16), suffix
    (tmp_path / "a.gif").write_bytes(_gif())
    (tmp_path / "b.png").write_bytes(cv2.imencode(".png", _image())[1].tobytes())
    # a folder's GIF is listed all the same, so that infer reports it with the reason
    assert [p.name for p in image_paths(tmp_path)] == ["a.gif", "b.png"]


def test_the_commands_name_the_contracts_formats(tmp_path):
    formats = image_files.IMAGE_FORMATS
    assert {suffix for suffixes in formats.values() for suffix in suffixes} == IMAGE_SUFFIXES
    assert decode.IMAGE_FORMATS == image_files.format_names() == "JPEG, PNG, BMP, WebP or TIFF"
    (tmp_path / "notes.txt").write_text("not an image\n")
    message = str(no_images_error(tmp_path))
    assert message.endswith(f"seg-client reads {', '.join(sorted(IMAGE_SUFFIXES))}") and ".gif" not in message
    assert set(group_download._CONTENT_TYPES.values()) <= IMAGE_SUFFIXES
    assert sniff_suffix(_gif()) is None
