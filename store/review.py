"""The review: what annotators decided of stored segments. Every decision is written here, whichever
command or page records it."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import update
from sqlalchemy.orm import Session

from store.dialect import utc_now
from store.name_matching import image_ids_matching
from store.names import wanted_names
from store.records import Status
from store.schema import Segment


def set_status(
    session: Session, names: Iterable[str], status: Status, model: str | None = None
) -> tuple[int, list[str]]:
    """Set the status of every segment of the named images (of ``model`` only, if given).
    Returns (segments changed, names that match no stored image)."""
    wanted = wanted_names(names)
    matched, hit = image_ids_matching(session, wanted)
    statement = update(Segment).where(Segment.image_id.in_(matched))
    if model is not None:
        statement = statement.where(Segment.model == model)
    now = utc_now()
    changed = session.execute(statement.values(status=status.value, reviewed_at=now, updated_at=now)).rowcount
    return changed, sorted(wanted - hit)
