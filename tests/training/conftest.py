"""What every training test shares."""

import pytest


@pytest.fixture(scope="module", autouse=True)
def no_wandb():
    """No W&B key from the developer's shell reaches a test run; nothing may log anywhere."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_MODE"):
            mp.delenv(name, raising=False)
        mp.setenv("WANDB_SILENT", "true")
        yield
