"""Which named groups the stored images belong to: a build adds every image of the group it ran on
(stored or skipped), and exports select by group."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.dialect import dialect_insert
from store.schema import Group, Image, image_groups


def add_image_to_groups(session: Session, image_id: int, groups: Sequence[str]) -> None:
    for name in sorted(set(groups)):  # one order for every writer: new groups cannot deadlock
        session.execute(
            dialect_insert(session, Group).values(name=name).on_conflict_do_nothing(index_elements=["name"])
        )
        group_id = session.scalar(select(Group.id).where(Group.name == name))
        session.execute(
            dialect_insert(session, image_groups)
            .values(image_id=image_id, group_id=group_id)
            .on_conflict_do_nothing()
        )


def add_images_to_groups(session: Session, paths: Iterable[str], groups: Sequence[str]) -> int:
    """Add the stored images named ``paths`` to ``groups``; returns how many images were found."""
    wanted = set(paths)
    ids = [i for i, p in session.execute(select(Image.id, Image.path)) if p in wanted]
    for image_id in ids:
        add_image_to_groups(session, image_id, groups)
    return len(ids)


def read_group_names(session: Session) -> list[str]:
    return list(session.scalars(select(Group.name).order_by(Group.name)))
