"""What commands and exports read from the store: which images a model has done, the images and
segments of a group, the counts ``segments status`` shows, and which model's segments to use."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from store.dialect import in_chunks
from store.errors import StoreError
from store.records import Origin, Status, StatusReport, StoredImage, StoredSegment
from store.schema import Group, Image, Segment, Segmentation, image_groups


def read_done_paths(
    session: Session, model: str, among: Collection[str] | None = None, since: datetime | None = None
) -> dict[str, str]:
    """Store names of the images ``model`` has segmented, with the sha256 of the picture it
    segmented (a picture whose sha256 differs now is not done)."""
    query = (
        select(Image.path, Segmentation.image_sha256)
        .join(Segmentation, Segmentation.image_id == Image.id)
        .where(Segmentation.model == model, Segmentation.image_sha256 == Image.sha256)
    )
    if among is not None:
        query = query.where(Image.path.in_(list(among)))
    if since is not None:
        query = query.where(Segmentation.updated_at >= since)
    return {path: sha for path, sha in session.execute(query)}


def database_time(session: Session) -> datetime:
    return session.scalar(select(func.now()))


def image_query(group: str | None, include_badlisted: bool) -> Select:
    """The stored images, by path: of ``group`` only, if given; without the badlisted ones unless
    ``include_badlisted``."""
    query = select(Image).order_by(Image.path)
    if group is not None:
        query = (
            query.join(image_groups, image_groups.c.image_id == Image.id)
            .join(Group, Group.id == image_groups.c.group_id)
            .where(Group.name == group)
        )
    if not include_badlisted:
        query = query.where(Image.badlisted.is_(False))
    return query


def read_images(
    session: Session, group: str | None = None, include_badlisted: bool = False
) -> list[StoredImage]:
    return [_stored_image(row) for row in session.scalars(image_query(group, include_badlisted)).all()]


def read_segments(
    session: Session,
    group: str | None = None,
    model: str | None = None,
    statuses: Iterable[Status] | None = None,
    include_badlisted: bool = False,
) -> list[StoredSegment]:
    """The segments of the current pictures of the selected images, by image path, then by score."""
    images = image_query(group, include_badlisted).subquery()
    query = (
        select(Segment, images.c.path)
        .join(images, (images.c.id == Segment.image_id) & (images.c.sha256 == Segment.image_sha256))
        .order_by(images.c.path, Segment.score.desc(), Segment.id)
    )
    if model is not None:
        query = query.where(Segment.model == model)
    if statuses is not None:
        query = query.where(Segment.status.in_([Status(s).value for s in statuses]))
    return [_stored_segment(segment, path) for segment, path in session.execute(query)]


def read_image_segments(
    session: Session, path: str, model: str
) -> tuple[StoredImage | None, list[StoredSegment]]:
    """The stored image named exactly ``path`` and every segment ``model``'s set holds of its
    current picture, whatever their status (what an import compares a file's shapes with)."""
    row = session.scalars(select(Image).where(Image.path == path)).one_or_none()
    if row is None:
        return None, []
    query = (
        select(Segment)
        .where(Segment.image_id == row.id, Segment.model == model, Segment.image_sha256 == row.sha256)
        .order_by(Segment.id)
    )
    return _stored_image(row), [_stored_segment(s, row.path) for s in session.scalars(query)]


def read_segment_models(session: Session, ids: Collection[int]) -> dict[int, str]:
    """segment id → the model set it belongs to, for the ids that are stored."""
    found: dict[int, str] = {}
    for chunk in in_chunks(sorted(set(ids))):
        found.update(
            (i, m) for i, m in session.execute(select(Segment.id, Segment.model).where(Segment.id.in_(chunk)))
        )
    return found


def read_class_table(session: Session, model: str) -> dict[str, int]:
    """class name → class id, as ``model``'s stored segments name them."""
    rows = session.execute(
        select(Segment.class_name, Segment.class_id).where(Segment.model == model).distinct()
    )
    return {name: class_id for name, class_id in rows}


def count_status(session: Session, group: str | None = None) -> StatusReport:
    """Images stored and badlisted, images each model segmented, and segments by model, class and
    status (badlisted images and stale segments left out of the last two)."""
    every = image_query(group, include_badlisted=True).subquery()
    kept = image_query(group, include_badlisted=False).subquery()
    report = StatusReport()
    report.images = session.scalar(select(func.count()).select_from(every)) or 0
    report.badlisted = report.images - (session.scalar(select(func.count()).select_from(kept)) or 0)
    for model, n in session.execute(
        select(Segmentation.model, func.count())
        .join(kept, kept.c.id == Segmentation.image_id)
        .group_by(Segmentation.model)
        .order_by(Segmentation.model)
    ):
        report.segmented[model] = n
    report.counts = [
        (m, c, s, n)
        for m, c, s, n in session.execute(
            select(Segment.model, Segment.class_name, Segment.status, func.count())
            .join(kept, (kept.c.id == Segment.image_id) & (kept.c.sha256 == Segment.image_sha256))
            .group_by(Segment.model, Segment.class_name, Segment.status)
            .order_by(Segment.model, Segment.class_name, Segment.status)
        )
    ]
    return report


def choose_segment_model(report: StatusReport, wanted: str | None, store_url: str) -> str:
    """``wanted``, checked against the models ``report`` has segments of, or the only such model;
    a StoreError, saying what to do, when there is none or the user must choose."""
    models = sorted(set(report.segmented) | {m for m, _, _, _ in report.counts})
    if wanted is not None:
        if wanted not in models:
            known = ", ".join(models) or "none"
            raise StoreError(f"segment store {store_url}: no segments of model {wanted!r} (models: {known})")
        return wanted
    if not models and report.images and report.badlisted == report.images:
        raise StoreError(
            f"segment store {store_url}: all {report.images} stored images are badlisted "
            "(seg-client segments badlist push put them there); no segments are left to use"
        )
    if not models:
        raise StoreError(f"segment store {store_url}: holds no segments; run seg-client segments build first")
    if len(models) > 1:
        raise StoreError(
            f"segment store {store_url} holds segments of several models ({', '.join(models)}): "
            "choose one with --segment-model"
        )
    return models[0]


def _stored_image(row: Image) -> StoredImage:
    return StoredImage(
        id=row.id,
        path=row.path,
        width=row.width,
        height=row.height,
        sha256=row.sha256,
        size=row.size,
        badlisted=row.badlisted,
        groups=tuple(sorted(g.name for g in row.groups)),
    )


def _stored_segment(row: Segment, path: str) -> StoredSegment:
    width, height = row.mask_width, row.mask_height
    return StoredSegment(
        id=row.id,
        image_id=row.image_id,
        image=path,
        width=width,
        height=height,
        model=row.model,
        model_version=row.model_version,
        class_id=row.class_id,
        class_name=row.class_name,
        score=row.score,
        bbox=(row.x1, row.y1, row.x2, row.y2),
        rle={"size": [height, width], "counts": row.rle_counts},
        status=Status(row.status),
        origin=Origin(row.origin or Origin.MODEL.value),
        replaces=row.replaces_id,
        revision=row.revision or 1,
        reviewer=row.reviewer,
        reviewed_at=row.reviewed_at,
        reason=row.review_reason,
        author=row.author,
        source_file=row.source_file,
    )


def read_segments_by_id(
    session: Session, ids: Collection[int], include_badlisted: bool = False
) -> list[StoredSegment]:
    """The segments among ``ids`` that belong to their image's current picture (without those of
    badlisted images unless ``include_badlisted``), by id."""
    found: list[StoredSegment] = []
    for chunk in in_chunks(sorted(set(ids))):
        query = (
            select(Segment, Image.path)
            .join(Image, (Image.id == Segment.image_id) & (Image.sha256 == Segment.image_sha256))
            .where(Segment.id.in_(chunk))
        )
        if not include_badlisted:
            query = query.where(Image.badlisted.is_(False))
        found += [_stored_segment(segment, path) for segment, path in session.execute(query)]
    return sorted(found, key=lambda s: s.id)


def read_image(session: Session, image_id: int) -> StoredImage | None:
    row = session.get(Image, image_id)
    return None if row is None else _stored_image(row)
