"""Reading (and, for our own format, writing) model checkpoints with torch, never running code a
file holds: ``smp`` for the checkpoints seg-train semantic writes, ``ultralytics`` for YOLO .pt files.
What the formats hold is defined in :mod:`segcontract.checkpoint_formats`."""
