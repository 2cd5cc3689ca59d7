"""The W&B half of `seg-train wandb-pull`, run as a child process by :mod:`training.wandb_pull`.

W&B's client talks to a service process (wandb-core) that retries an unreachable server for
minutes and that the client waits for at exit, whatever its HTTP timeout says; in a child in its
own session, all of it can be given up at a deadline and ended at once. The child reports on its
standard output, one JSON object per line: ``{"ready": true}`` once wandb is imported,
``{"found": true}``, then ``{"done": true}``, or ``{"error": "<one line>"}`` at any point.
The API key comes from WANDB_API_KEY in the environment, never from the command line, and is
never reported."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

KEY_ENV = "WANDB_API_KEY"


def clean(exc: BaseException, key: str) -> str:
    """The first line of ``exc``, the key masked, at most 300 characters."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return (line.replace(key, "***") if key else line)[:300]


def _report(channel, **fields) -> None:
    channel.write(json.dumps(fields) + "\n")
    channel.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("artifact", help="ENTITY/PROJECT/NAME:VERSION")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--timeout", type=int, default=10)
    args = parser.parse_args(argv)
    # Only the reports go to the parent: anything W&B prints goes to standard error instead.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    key = os.environ.get(KEY_ENV, "").strip()
    server = os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        import wandb

        _report(channel, ready=True)
        found = wandb.Api(api_key=key, timeout=args.timeout).artifact(args.artifact)
    except Exception as exc:  # CommError (unreachable, unknown artifact), AuthenticationError...
        _report(channel, error=f"W&B {server}: cannot get {args.artifact}: {clean(exc, key)}")
        return 1
    _report(channel, found=True)
    try:
        args.folder.mkdir(parents=True, exist_ok=True)
        found.download(root=str(args.folder))
    except OSError as exc:
        _report(channel, error=f"{args.folder}: cannot write the download ({exc.strerror or exc})")
        return 1
    except Exception as exc:
        _report(channel, error=f"W&B {server}: download of {args.artifact} failed: {clean(exc, key)}")
        return 1
    _report(channel, done=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
