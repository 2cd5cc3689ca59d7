"""Synthetic scenes: coloured shapes on textured backgrounds, with their instance masks.

Used by the demo and the tests, where no dataset can be downloaded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from training.polygons import mask_polygons

SHAPES = ("circle", "rectangle", "triangle")


@dataclass
class Instance:
    shape: str
    mask: np.ndarray  # HxW uint8 {0, 1}


def make_scene(
    height: int, width: int, rng: np.random.Generator, max_objects: int = 4
) -> tuple[np.ndarray, list[Instance]]:
    """A BGR uint8 image and the instances drawn on it (later shapes occlude earlier ones)."""
    base = rng.integers(40, 215, 3)
    noise = rng.normal(0, 12, (height, width, 1))
    image = np.clip(base[None, None, :] + noise, 0, 255).astype(np.uint8)
    instances: list[Instance] = []
    scale = min(height, width)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        size = int(rng.integers(max(scale // 10, 2), max(scale // 3, 3)))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        mask = np.zeros((height, width), np.uint8)
        if shape == "circle":
            cv2.circle(mask, (cx, cy), size, 1, -1)
        elif shape == "rectangle":
            cv2.rectangle(mask, (cx - size, cy - size // 2), (cx + size, cy + size // 2), 1, -1)
        else:
            pts = np.array([[cx, cy - size], [cx - size, cy + size], [cx + size, cy + size]], np.int32)
            cv2.fillPoly(mask, [pts], 1)
        if not mask.any():
            continue
        colour = rng.integers(0, 255, 3)
        image[mask.astype(bool)] = colour
        for other in instances:
            other.mask[mask.astype(bool)] = 0
        instances.append(Instance(shape, mask))
    return image, [i for i in instances if i.mask.any()]


def write_coco_dataset(
    root: Path,
    categories: dict[str, int],
    num_images: int,
    rng: np.random.Generator,
    sizes: tuple[tuple[int, int], ...] = ((240, 320), (320, 240), (256, 256)),
    rle_every: int = 5,
    subfolder_every: int = 4,
    max_objects: int = 4,
) -> Path:
    """A CVAT-style COCO 1.0 export: ``root/images/...`` and ``root/annotations/instances_default.json``.

    ``categories`` maps a shape name to the category id this dataset uses for it (ids may differ
    between datasets and need not be contiguous). Every ``rle_every``-th instance is stored as RLE
    (alternately uncompressed with iscrowd=1, as CVAT writes crowd regions, and compressed); every
    ``subfolder_every``-th image lives in a sub-folder, so ``file_name`` carries a folder."""
    from pycocotools import mask as mask_utils

    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    instance_no = 0
    for index in range(num_images):
        h, w = sizes[index % len(sizes)]
        image, instances = make_scene(h, w, rng, max_objects=max_objects)
        name = f"{root.name}_{index:04d}.jpg"
        file_name = f"part{index % 2}/{name}" if subfolder_every and index % subfolder_every == 0 else name
        (root / "images" / file_name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / file_name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "width": w, "height": h})
        for inst in instances:
            instance_no += 1
            x, y, bw, bh = cv2.boundingRect(inst.mask)
            ann = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": categories[inst.shape],
                "bbox": [float(x), float(y), float(bw), float(bh)],
                "area": float(inst.mask.sum()),
                "iscrowd": 0,
            }
            if rle_every and instance_no % rle_every == 0:
                rle = mask_utils.encode(np.asfortranarray(inst.mask))
                if (instance_no // rle_every) % 2:
                    ann["segmentation"] = _uncompressed_rle(inst.mask)
                    ann["iscrowd"] = 1
                else:
                    ann["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
            else:
                polygons = mask_polygons(inst.mask)
                if not polygons:
                    continue
                ann["segmentation"] = polygons
            annotations.append(ann)
    coco = {
        "info": {"description": f"synthetic scenes {root.name}"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": cid, "name": name, "supercategory": ""} for name, cid in categories.items()],
    }
    path = root / "annotations" / "instances_default.json"
    path.write_text(json.dumps(coco))
    return path


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE: run lengths of the column-major flattening, starting with zeros."""
    flat = np.asfortranarray(mask).flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0, *counts]
    return {"size": list(mask.shape), "counts": counts}


def write_semantic_dataset(
    root: Path,
    num_images: int,
    rng: np.random.Generator,
    sizes: tuple[tuple[int, int], ...] = ((96, 128), (128, 96)),
) -> Path:
    """Seed 001's layout from generated scenes: images/, indexes/<stem>.png (0 background, then one
    class per shape) and colors.csv."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "indexes").mkdir(parents=True, exist_ok=True)
    for i in range(num_images):
        h, w = sizes[i % len(sizes)]
        image, instances = make_scene(h, w, rng)
        index = np.zeros((h, w), np.uint8)
        for inst in instances:
            index[inst.mask.astype(bool)] = SHAPES.index(inst.shape) + 1
        cv2.imwrite(str(root / "images" / f"scene_{i:04d}.png"), image)
        cv2.imwrite(str(root / "indexes" / f"scene_{i:04d}.png"), index)
    colors = ["background,0,0,0", "circle,230,25,75", "rectangle,60,180,75", "triangle,0,130,200"]
    (root / "colors.csv").write_text("name,r,g,b\n" + "\n".join(colors) + "\n")
    return root
