"""Defaults of the served thresholds and the bounds on the work one request can ask for.

Each value is defined here once: build-repo's options, the family settings and the
Python-backend models read them from this module."""

DEFAULT_CONF = 0.25  # confidence threshold
DEFAULT_IOU = 0.7  # NMS IoU threshold
DEFAULT_MAX_DET = 300  # detections per image: the default and the ceiling of a request's max_det
MAX_DET_CEILING = 10_000  # the most --max-det build-repo accepts

# Larger images are refused from their header, before a pixel is decoded. 64 MP holds every
# mainstream camera at full resolution (61 MP full frame is 9504×6336, 48/50 MP phone sensors, the
# 24 MP of a 6000×4000 DSLR) and refuses panoramas, scans and decompression bombs; a decoded image
# costs 3 bytes a pixel, so one at the limit takes about 0.2 GB.
DEFAULT_MAX_PIXELS = 64_000_000
