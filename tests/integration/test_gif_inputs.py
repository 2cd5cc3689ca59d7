"""A GIF listed in a group is refused by ``segments build`` before anything is sent (one line, the
reason groups pull and the server give), and the rest of the group goes on."""

import cv2
import numpy as np

from segops.decode import GIF_REFUSED
from tests.conftest import MODEL, answered_requests, run_cli


def test_segments_build_refuses_a_gif_without_asking_and_goes_on(triton, tmp_path):
    root = tmp_path / "root"
    pictures = root / "DATA" / "pictures"
    pictures.mkdir(parents=True)
    image = np.zeros((64, 80, 3), np.uint8)
    image[10:50, 20:60] = (30, 160, 240)
    (pictures / "still.gif").write_bytes(cv2.imencode(".gif", image)[1].tobytes())
    cv2.imwrite(str(pictures / "same.png"), image)
    (root / "DATA" / "datasets").mkdir()
    (root / "DATA" / "datasets" / "gifs.txt").write_text("still.gif\nsame.png\n")
    before = answered_requests(triton)
    proc = run_cli("seg-client", "segments", "build", "--group", "gifs", "--model", MODEL,
                   "--url", triton.grpc_url, "--db", f"sqlite:///{tmp_path / 'segments.db'}",
                   "--data-root", str(root), check=False)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"still.gif: {GIF_REFUSED}" in proc.stderr, proc.stderr
    assert "1 segmented" in proc.stdout, proc.stdout
    assert answered_requests(triton) - before == 1
