"""A YOLOv8-seg checkpoint with random weights that still detects things.

A network initialised at random has vanishing activations once BatchNorm uses its default running
statistics, so it never scores above any threshold. Re-estimating those statistics on a few images
and setting the class bias gives a deterministic model whose boxes, scores and masks are arbitrary
but well spread: enough to test export, serving and parity with ultralytics without downloads or
training. It is no substitute for a trained model's accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.synthetic import make_scene


def make_random_yolo_seg(
    path: Path,
    model: str = "yolov8n-seg",
    class_names: list[str] | None = None,
    imgsz: int = 320,
    seed: int = 0,
    class_bias: float = -3.0,
) -> Path:
    from ultralytics import YOLO
    from ultralytics.nn.tasks import SegmentationModel

    names = class_names or ["circle", "rectangle", "triangle"]
    torch.manual_seed(seed)
    yolo = YOLO(f"{model}.yaml")
    net = SegmentationModel(yolo.model.yaml, nc=len(names), verbose=False)
    net.names = dict(enumerate(names))
    net.args = {"imgsz": imgsz, "task": "segment"}
    net.task = "segment"
    rng = np.random.default_rng(seed)
    scenes = [make_scene(imgsz, imgsz, rng)[0] for _ in range(8)]
    batch = torch.from_numpy(np.stack(scenes)[..., ::-1].transpose(0, 3, 1, 2).copy()).float() / 255
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batch
    net.train()
    with torch.no_grad():
        net(batch)
    net.eval()
    for branch in net.model[-1].cv3:
        branch[-1].bias.data[:] = class_bias
    yolo.model = net
    yolo.ckpt = {"train_args": {"task": "segment", "imgsz": imgsz, "model": f"{model}.yaml"}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    yolo.save(str(path))
    return path
