"""The TensorRT runtime: options, Polygraphy's loader chain, calibration data, the engine check.

Everything here but ``engine_build`` works without TensorRT: Polygraphy's loaders are lazy, so the
chain, profiles and config can be built (and tested) on a machine that only has the pip packages.
"""

from polygraphy.logger import G_LOGGER

# build-repo prints its own progress lines; Polygraphy's INFO lines (and its note about the
# optional 'colored' package, printed on the first coloured message) would bury them.
G_LOGGER.colors = False
G_LOGGER.module_severity = G_LOGGER.WARNING
