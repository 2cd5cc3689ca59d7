"""Reading CVAT "COCO 1.0" exports for coco2yolo: the dataset folders under a source, their
categories unified by name, and each image with its annotations. What cannot be used is a skip
reason (``Skipped``) for the report, never an error; a file that cannot be read at all is a
``DatasetError`` naming it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from annotations.coco import read_coco
from annotations.errors import AnnotationFormatError
from segcontract.errors import SegstackError


class DatasetError(SegstackError):
    """A problem with the input the user must fix; the message names the file."""


@dataclass
class Skipped:
    dataset: str
    annotation_id: object
    image: str
    reason: str


@dataclass
class SourceImage:
    dataset: str
    file_name: str
    path: Path
    width: int
    height: int
    annotations: list[dict] = field(default_factory=list)
    source: Path | None = None  # the annotation file that lists it


def find_datasets(src: Path) -> list[Path]:
    src = Path(src)
    if not src.is_dir():
        raise DatasetError(f"{src}: no such folder; --src-dir takes a folder of COCO exports")
    candidates = [src] if (src / "images").is_dir() else sorted(p for p in src.iterdir() if p.is_dir())
    datasets = []
    for folder in candidates:
        if not (folder / "images").is_dir():
            continue
        if not (folder / "annotations").is_dir():
            raise DatasetError(
                f"{folder}: has images/ but no annotations/ folder (expected annotations/*.json)"
            )
        if not list((folder / "annotations").glob("*.json")):
            raise DatasetError(f"{folder / 'annotations'}: no .json file in it")
        datasets.append(folder)
    if not datasets:
        raise DatasetError(f"{src}: no dataset found (a sub-folder with images/ and annotations/*.json)")
    return datasets


def read_classes_file(path: Path) -> list[str]:
    names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not names:
        raise DatasetError(f"{path}: no class names in it (one per line)")
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: a class name is listed twice")
    return names


def load_json(path: Path) -> dict:
    """A COCO instances file; DatasetError naming the file when it is not one."""
    try:
        return read_coco(path)
    except AnnotationFormatError as exc:
        raise DatasetError(str(exc)) from None


def _image_entry(img: object) -> tuple[object, str, int, int] | str:
    """(id, file_name, width, height) of a COCO image entry, or why it cannot be used."""
    if not isinstance(img, dict):
        return "image entry is not an object"
    missing = [k for k in ("id", "file_name", "width", "height") if k not in img]
    if missing:
        return f"image entry without {', '.join(missing)}"
    try:
        width, height = int(img["width"]), int(img["height"])
    except (TypeError, ValueError):
        return f"invalid width/height {img['width']!r}/{img['height']!r}"
    if width <= 0 or height <= 0:
        return f"invalid width/height {width}/{height}"
    file_name = str(img["file_name"])
    if not file_name or Path(file_name).is_absolute() or ".." in Path(file_name).parts:
        return f"file_name {file_name!r} is not a path inside images/"
    return img["id"], file_name, width, height


def _sorted_ids(ids: Iterable[object]) -> list[object]:
    """Category ids in order: numerically when they are numbers, as text otherwise."""
    try:
        return sorted(ids)  # type: ignore[type-var]
    except TypeError:
        return sorted(ids, key=str)


def _category_names(coco: dict, names: list[str], fixed: bool) -> dict[object, str | None]:
    """category id → name (None when it has none); unless ``fixed``, new names join ``names``."""
    cat_name: dict[object, str | None] = {}
    for c in coco["categories"]:
        if isinstance(c, dict) and "id" in c:
            cat_name[c["id"]] = str(c["name"]) if "name" in c else None
    for cid in _sorted_ids(cat_name):
        name = cat_name[cid]
        if name is not None and name not in names and not fixed:
            names.append(name)
    return cat_name


def _images_by_id(
    coco: dict, folder: Path, ann_file: Path, report_image_skip: Callable[[str, str, str], None]
) -> dict[object, SourceImage | str]:
    """image id → its image, or why the entry cannot be used."""
    by_id: dict[object, SourceImage | str] = {}
    for img in coco["images"]:
        entry = _image_entry(img)
        if isinstance(entry, str):
            img = img if isinstance(img, dict) else {}
            report_image_skip(folder.name, str(img.get("file_name", f"image id {img.get('id', '?')}")), entry)
            if "id" in img:
                by_id[img["id"]] = entry
            continue
        image_id, file_name, width, height = entry
        if image_id in by_id:
            raise DatasetError(f"{ann_file}: image id {image_id} is listed twice; keep one entry")
        by_id[image_id] = SourceImage(
            folder.name, file_name, folder / "images" / file_name, width, height, source=ann_file
        )
    return by_id


def _category_problem(cid: object, cat_name: dict[object, str | None], names: list[str]) -> str | None:
    if cid not in cat_name:
        return f"unknown category id {cid}"
    if cat_name[cid] is None:
        return f"category id {cid} has no name"
    if cat_name[cid] not in names:
        return f"category {cat_name[cid]!r} is not in --classes"
    return None


def _attach_annotations(
    coco: dict,
    dataset: str,
    by_id: dict[object, SourceImage | str],
    cat_name: dict[object, str | None],
    names: list[str],
    report_skip: Callable[[Skipped], None],
) -> None:
    """Each annotation onto its image, with its class index as ``_class``, or a skip reason."""
    for ann in coco["annotations"]:
        image = by_id.get(ann.get("image_id"))
        if image is None:
            report_skip(Skipped(dataset, ann.get("id"), "?", f"unknown image id {ann.get('image_id')}"))
        elif isinstance(image, str):
            report_skip(Skipped(dataset, ann.get("id"), f"image id {ann.get('image_id')}", image))
        elif reason := _category_problem(ann.get("category_id"), cat_name, names):
            report_skip(Skipped(dataset, ann.get("id"), image.file_name, reason))
        else:
            image.annotations.append({**ann, "_class": names.index(cat_name[ann.get("category_id")])})


def collect(
    datasets: Iterable[Path],
    classes: list[str] | None,
    report_skip: Callable[[Skipped], None],
    report_image_skip: Callable[[str, str, str], None] = lambda dataset, image, reason: None,
) -> tuple[list[str], list[SourceImage]]:
    names: list[str] = list(classes or [])
    images: list[SourceImage] = []
    for folder in datasets:
        for ann_file in sorted((folder / "annotations").glob("*.json")):
            coco = load_json(ann_file)
            cat_name = _category_names(coco, names, fixed=classes is not None)
            by_id = _images_by_id(coco, folder, ann_file, report_image_skip)
            _attach_annotations(coco, folder.name, by_id, cat_name, names, report_skip)
            images.extend(im for im in by_id.values() if isinstance(im, SourceImage))
    return names, images
