"""Class-index masks: one value per pixel, the class index; ``IGNORE_INDEX`` marks unlabelled pixels
in training masks."""

IGNORE_INDEX = 255


def index_dtype(largest_value: int) -> str:
    """The dtype of a mask whose values go up to ``largest_value``: uint8 while it fits, else uint16.

    A served mask holds class indices ``0 .. num_classes - 1``; a training mask also holds
    ``IGNORE_INDEX``."""
    if largest_value < 0 or largest_value > 65535:
        raise ValueError(f"mask values up to {largest_value} fit neither uint8 nor uint16")
    return "uint8" if largest_value <= 255 else "uint16"
