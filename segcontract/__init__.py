"""The rules every part of segstack agrees on: what a served model is called, takes and returns,
how it describes itself, which files and records are written, and how.

Builder, server-side models, clients and training all import from here; this package imports
nothing of theirs, and nothing heavier than the standard library (so it also ships, like
``segops``, inside every Python-backend model of a built repository).

- :mod:`segcontract.tasks`: task kinds and each task's ensemble inputs and outputs
- :mod:`segcontract.model_metadata`: the one versioned record a built model carries in its
  config.pbtxt (``segstack_metadata``), and the names of the other parameter keys
- :mod:`segcontract.schemas`: JSON Schema files of every record we write (``schemas/*.json``)
- :mod:`segcontract.tensors`: named tensors and their Triton types
- :mod:`segcontract.limits`: default thresholds and the bounds on one request's work
- :mod:`segcontract.masks`: class-index mask values and dtype
- :mod:`segcontract.checkpoint_formats`: what the checkpoints we read and write hold
- :mod:`segcontract.engines`: the TensorRT engine record and whether an engine loads here
- :mod:`segcontract.image_files`: which files are images
- :mod:`segcontract.files`: the one atomic writer
- :mod:`segcontract.tool_locations`: where the installers put tritonserver and perf_analyzer
- :mod:`segcontract.registry`: the one shape of every registry chosen by name (families,
  runtimes, client writers)
"""
