"""Rows as an older segstack wrote them, in plain SQL (today's models have columns those tables
lack): what the migration tests upgrade."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

NOW = "2026-12-01 10:00:00+00:00"


def write_0002_rows(connection: Connection, reviewed: bool = False) -> None:
    """Image ``1.jpg`` (4x3, sha256 ``a``*64) in group ``g``, segmented by model ``m`` (version
    ``v1``): one ``cat`` segment with RLE counts ``abc``, approved when ``reviewed``."""
    status, reviewed_at = ("approved", NOW) if reviewed else ("unchecked", None)
    for statement, values in (
        ("INSERT INTO groups (id, name, created_at) VALUES (1, 'g', :now)", {}),
        (
            "INSERT INTO images (id, path, sha256, size, width, height, badlisted, created_at, updated_at) "
            "VALUES (1, '1.jpg', :sha, 10, 4, 3, false, :now, :now)",
            {},
        ),
        ("INSERT INTO image_groups (image_id, group_id) VALUES (1, 1)", {}),
        (
            "INSERT INTO segmentations (id, image_id, model, model_version, image_sha256, segments, "
            "created_at, updated_at) VALUES (1, 1, 'm', 'v1', :sha, 1, :now, :now)",
            {},
        ),
        (
            "INSERT INTO segments (id, image_id, model, model_version, class_id, class_name, score, "
            "x1, y1, x2, y2, rle_counts, mask_height, mask_width, image_sha256, fingerprint, status, "
            "created_at, updated_at, reviewed_at) VALUES (1, 1, 'm', 'v1', 0, 'cat', 0.9, 0, 0, 1, 1, "
            "'abc', 3, 4, :sha, 'f', :status, :now, :now, :reviewed_at)",
            {"status": status, "reviewed_at": reviewed_at},
        ),
    ):
        connection.execute(text(statement), {"now": NOW, "sha": "a" * 64, **values})
