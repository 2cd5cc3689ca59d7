"""Environment for running ultralytics without network access (demo, benchmarks, tests)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def configure_offline_ultralytics(config_dir: Path | None = None) -> None:
    """YOLO_OFFLINE, a settings folder, and a TTF so ultralytics never tries to download Arial."""
    config_dir = config_dir or Path(tempfile.gettempdir()) / "segstack-ultralytics"
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    os.environ.setdefault("YOLO_VERBOSE", "False")
    font = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        import matplotlib

        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)
