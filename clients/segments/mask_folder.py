"""``seg-client masks`` as a library call: a folder of mask files for annotators from the stored
segments (``clients.segments.mask_files`` writes each image's), kept in step with the badlist."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clients.segments.selection import chosen_images, chosen_segments
from clients.segments.store_cli import NOT_REJECTED, open_store, shown
from clients.triton.client import ClientError
from clients.triton.image_sources import ImageItem, output_names
from clients.triton.progress import Progress, no_progress
from store.layout import DataLayout
from store.records import StoredImage, StoredSegment


@dataclass(frozen=True)
class MaskOptions:
    group: str | None = None
    out: Path | None = None  # default: MARKUP/masks under the data root
    color: bool = False  # also <stem>_color.png
    statuses: tuple[str, ...] = NOT_REJECTED
    model: str | None = None  # whose segments (needed when the store holds several models')
    db: str | None = None
    data_root: Path = Path(".")


@dataclass(frozen=True)
class MaskReport:
    written: int  # images
    badlisted: int  # images left out
    segments: int
    removed: int  # badlisted images whose earlier mask files were removed
    out: Path

    def line(self) -> str:
        gone = f"; {self.removed} badlisted images' mask files removed" if self.removed else ""
        left = f" ({self.badlisted} badlisted left out)" if self.badlisted else ""
        return f"{self.written} images{left}, {self.segments} segments → {self.out}{gone}"


def write_masks(options: MaskOptions, *, progress: Progress = no_progress) -> MaskReport:
    """Each image's mask files, and the removal of those an earlier run wrote for images
    badlisted since."""
    from clients.segments.mask_files import write_mask_files

    layout = DataLayout(options.data_root)
    out = options.out or layout.masks
    with open_store(options.db, layout) as store:
        images = chosen_images(store, options.group)
        found = chosen_segments(store, options.group, options.model, options.statuses)
        every = store.images(group=options.group, include_badlisted=True)
    by_image: dict[int, list[StoredSegment]] = {}
    for segment in found:
        by_image.setdefault(segment.image_id, []).append(segment)
    stems = _stems(every)
    if options.color:
        _refuse_color_name_clashes(images, every, stems)
    written = 0
    with progress("masks", len(images)) as advance:
        for image in images:
            stem = stems[image.id]
            try:
                write_mask_files(
                    out / stem.parent, stem.name, image, by_image.get(image.id, []), options.color
                )
            except OSError as exc:
                raise ClientError(f"cannot write masks under {out}: {exc.strerror or exc}") from None
            except ValueError as exc:  # a stored segment that does not fit its image
                raise ClientError(f"cannot build the masks of {image.path}: {exc}") from None
            written += 1
            advance(1)
    removed = _remove_badlisted_masks(out, [stems[i.id] for i in every if i.badlisted], set(stems.values()))
    return MaskReport(written, len(every) - len(images), len(found), removed, out)


def _stems(every: list[StoredImage]) -> dict[int, Path]:
    """Image id → its files' stem, from every image, badlisted ones too, so that an image's files
    keep their names."""
    names = output_names([ImageItem(Path(i.path), Path(i.path)) for i in every])
    return dict(zip((i.id for i in every), names.values()))


def _refuse_color_name_clashes(
    images: list[StoredImage], every: list[StoredImage], stems: dict[int, Path]
) -> None:
    """``<stem>_color.png`` must not be the mask of another image (``x.jpg`` beside ``x_color.jpg``):
    refused before anything is written, rather than one file overwriting the other."""
    from clients.segments.mask_files import color_name

    owner = {stems[i.id]: i for i in every}
    for image in images:
        stem = stems[image.id]
        other = owner.get(stem.with_name(Path(color_name(stem.name)).stem))
        if other is not None:
            raise ClientError(
                f"--color: the colour mask of {shown(image.path)} would be "
                f"{shown(stem.with_name(color_name(stem.name)).as_posix())}, the mask of "
                f"{shown(other.path)}; run without --color"
            )


def _remove_badlisted_masks(out: Path, stems: list[Path], every_stem: set[Path]) -> int:
    """Mask files that an earlier run wrote for images badlisted since (only ``<stem>.png`` with
    its ``<stem>.json`` beside it: files this command writes as a pair), and with them
    ``<stem>_color.png`` (``--color``) unless that is itself an image's mask (a ``.json`` beside it,
    or a stem of the images here)."""
    from clients.segments.mask_files import color_name

    removed = 0
    for stem in stems:
        png, sidecar = out / stem.with_name(stem.name + ".png"), out / stem.with_name(stem.name + ".json")
        if png.is_file() and sidecar.is_file():
            colored = out / stem.with_name(color_name(stem.name))
            png.unlink()
            sidecar.unlink()
            removed += 1
            theirs = colored.with_suffix(".json").exists() or stem.with_name(colored.stem) in every_stem
            if colored.is_file() and not theirs:
                colored.unlink()
    return removed
