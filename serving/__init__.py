"""Everything that runs on, or starts, the Triton server: the launcher behind `seg-serve` and the
Python-backend model code that build-repo copies into model repositories."""
