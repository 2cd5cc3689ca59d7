"""Weights & Biases for `seg-train classify`: on only when WANDB_API_KEY is set and WANDB_MODE is
not ``disabled``; it never prompts, and a W&B server that cannot be reached is a warning, not a
failed run. The logger uploads the checkpoints as an artifact, which ``seg-train wandb-pull`` fetches."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from training.exception_text import first_line

log = logging.getLogger("seg-train")

DEFAULT_PROJECT = "segstack-classify"


def wandb_wanted() -> tuple[bool, str]:
    """(log to W&B?, a line saying why). Without a key W&B is switched off for the whole process
    (WANDB_MODE=disabled), so nothing tries the network or prompts."""
    if not os.environ.get("WANDB_API_KEY"):
        os.environ["WANDB_MODE"] = "disabled"
        os.environ.setdefault("WANDB_SILENT", "true")
        return False, "W&B off (no WANDB_API_KEY)"
    if os.environ.get("WANDB_MODE", "").strip().lower() == "disabled":
        return False, "W&B off (WANDB_MODE=disabled)"
    os.environ.setdefault("WANDB_SILENT", "true")  # its banner; the run's address is logged instead
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    return True, "W&B on" + (" (offline: wandb sync uploads later)" if mode in {"offline", "dryrun"} else "")


def wandb_logger(run_dir: Path, name: str, experiment: str) -> Any | None:
    """A started WandbLogger, or None (with a warning) when W&B cannot start."""
    try:
        import wandb
        from lightning.pytorch.loggers import WandbLogger

        logger = WandbLogger(
            name=f"{name}/{experiment}",
            project=os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
            save_dir=str(run_dir),
            log_model=True,  # the checkpoints become an artifact: seg-train wandb-pull
            settings=wandb.Settings(init_timeout=30),  # an unreachable server: a warning in 30 s
        )
        url = getattr(logger.experiment, "url", None)  # starts the run now, not mid-training
    except Exception as exc:  # W&B raises many types (CommError, UsageError, timeouts)
        reason = first_line(exc)
        key = os.environ.get("WANDB_API_KEY", "")
        if key:
            reason = reason.replace(key, "***")
        log.warning("W&B unavailable (%s): training without it", reason)
        return None
    if url:
        log.info("W&B run: %s", url)
    return logger


def finish_wandb() -> None:
    try:
        import wandb

        wandb.finish()
    except Exception as exc:  # the run's data is local; wandb sync can upload it later
        log.warning("W&B did not finish cleanly (%s)", first_line(exc))
