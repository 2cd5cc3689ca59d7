"""CVAT integration: an auto-annotation function (cvat-sdk's protocol) backed by a served model."""
