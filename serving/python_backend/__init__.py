"""Python-backend model code. build-repo copies ``segops/`` and one of ``models/*.py`` (as
``model.py``) into each model's version folder, so a built repository is self-contained."""

from pathlib import Path

PYTHON_BACKEND_DIR = Path(__file__).parent
SEGOPS_DIR = PYTHON_BACKEND_DIR / "segops"
MODELS_DIR = PYTHON_BACKEND_DIR / "models"
REQUIREMENTS_FILE = PYTHON_BACKEND_DIR / "requirements.txt"
