"""The ``seg-review`` console script: checks that the review extra is installed before importing
the CLI, whose page needs Starlette, uvicorn and Jinja2."""

from __future__ import annotations

from segcontract.extras import require_extra


def main() -> None:
    require_extra("seg-review", "review")
    from review.cli import main as cli

    cli(prog_name="seg-review")


if __name__ == "__main__":
    main()
