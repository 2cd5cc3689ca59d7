"""The Triton Python-backend models build-repo puts into repositories (numpy/OpenCV, no torch).

Each ``<name>.py`` here becomes a model's ``1/model.py``; the packages it imports (``segops`` and
``segcontract``) are copied beside it, so a built repository is self-contained. ``requirements.txt``
is what the server's Python environment needs to run them, and nothing more.
"""

from pathlib import Path

import segcontract
import segops

MODELS_DIR = Path(__file__).parent
REQUIREMENTS_FILE = MODELS_DIR / "requirements.txt"
# what a model.py imports besides the requirements: copied into its version folder
SHARED_PACKAGES = {
    "segops": Path(segops.__file__).parent,
    "segcontract": Path(segcontract.__file__).parent,
}


def model_source(name: str) -> Path:
    """The file that becomes ``1/model.py``; FileNotFoundError when there is none by that name."""
    source = MODELS_DIR / f"{name}.py"
    if name.startswith("_") or not source.is_file():
        raise FileNotFoundError(source)
    return source
