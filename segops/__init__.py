"""Pure numpy/OpenCV pre- and post-processing shared by the server models, the builder's checks and
the benchmarks. No torch here: this runs inside Triton's Python backend."""
