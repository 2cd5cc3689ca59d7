"""Predict with a `seg-train semantic` checkpoint in PyTorch, preprocessing exactly as the server
does (segops), and colour the result: what `seg-train color-mask` writes, and the reference the
served masks are compared with."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np
import torch

from model_checkpoints.smp import SemanticModelInfo, build_model, load_checkpoint
from segcontract.image_files import IMAGE_SUFFIXES
from segops.colors import blend, colorize
from segops.resize import InputSpec, prepare
from segops.semantic import class_index_mask
from training.semantic_data import DataError, read_class_table


class SemanticPredictor:
    def __init__(self, checkpoint: Path, size_wh: tuple[int, int] | None = None, device: str = "cpu"):
        self.info, payload = load_checkpoint(checkpoint)
        self.model = build_model(self.info)
        self.model.load_state_dict(payload["state_dict"])
        self.model.eval().to(device)
        self.device = device
        w, h = size_wh or self.info.input_size
        self.spec = InputSpec(h, w, "stretch", self.info.mean, self.info.std, "CHW")

    @torch.no_grad()
    def predict(self, image_bgr: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(prepare(image_bgr, self.spec)[None]).to(self.device)
        logits = self.model(x)[0].cpu().numpy()
        return class_index_mask(logits, image_bgr.shape[:2])


def color_masks(
    images_path: Path,
    checkpoint: Path,
    output_dir: Path,
    size_wh: tuple[int, int] | None = None,
    colors_csv: Path | None = None,
    progress: Callable[[Iterable], Iterable] = lambda x: x,
) -> tuple[int, dict[str, str]]:
    """Write <stem>_color_mask.png and <stem>_overlay.jpg per image; return (written, failures)."""
    predictor = SemanticPredictor(checkpoint, size_wh)
    info: SemanticModelInfo = predictor.info
    colors = read_class_table(colors_csv, info.num_classes).colors if colors_csv else info.colors
    images_path = Path(images_path)
    if images_path.is_file():
        images = [images_path]
    elif images_path.is_dir():
        images = sorted(p for p in images_path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        raise DataError(f"{images_path}: no such image or folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    written, failed = 0, {}
    for path in progress(images):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            failed[str(path)] = "not a readable image"
            continue
        color = colorize(predictor.predict(image), colors)
        cv2.imwrite(str(output_dir / f"{path.stem}_color_mask.png"), color)
        cv2.imwrite(str(output_dir / f"{path.stem}_overlay.jpg"), blend(image, color))
        written += 1
    return written, failed
