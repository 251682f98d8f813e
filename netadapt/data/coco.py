"""COCO-format detection data: an annotation file plus an image folder, checked up front.

:class:`CocoDetection` reads a COCO ``instances_*.json`` through pycocotools and yields samples in
torchvision's detection format. Everything that can be checked without decoding every image is
checked when the dataset is built, so that a bad file fails at once in one readable line
(:class:`~netadapt.errors.DataError`, naming the file and the annotation or image id) instead of
deep inside a training run.

Labels are contiguous, ``1..C`` for the ``C`` categories sorted by COCO id, and ``0`` is the
background, as torchvision's SSD expects; :meth:`CocoDetection.label_to_category_id` turns a label
back into the COCO category id that results files need.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import operator
import os
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from pycocotools.coco import COCO
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from netadapt.data.images import IMAGE_ERRORS, to_rgb
from netadapt.errors import DataError, NetadaptWarning

REQUIRED_KEYS = ("images", "annotations", "categories")
BACKGROUND = "__background__"
COCO_VAL_IMAGES, COCO_CLASSES = 5000, 81  # COCO 2017: val2017's images; 80 categories and the background
MAX_IMAGE_SIDE = 1 << 20  # pixels; a larger side is a typo or a crafted file, not an image PIL would open

Sample = tuple[tv_tensors.Image, dict[str, Any]]
Transforms = Callable[[tv_tensors.Image, dict[str, Any]], Sample]

# How each kind of repaired box is reported in the one summary warning.
_REPAIRS = {
    "clipped": "clipped {n} {boxes} that extended outside their image",
    "non-positive": "dropped {n} {boxes} with non-positive width or height",
    "outside": "dropped {n} {boxes} lying entirely outside their image",
}


class DataWarning(NetadaptWarning):
    """Annotations were repaired (boxes clipped or dropped); the message gives the counts."""


LARGE_JSON_BYTES = 256 * 2**20  # a JSON file this large is announced before it is read


def read_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; any failure is a :class:`DataError` naming the file (and the position)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size >= LARGE_JSON_BYTES:  # COCO-sized files parse for minutes into several times their size of memory
            warnings.warn(f"{path}: reading {size / 2**30:.1f} GiB of JSON (needs about {3 * size / 2**30:.0f} GiB of memory)", DataWarning, stacklevel=2)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise DataError(f"{path}: file not found") from error
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (bad byte at offset {error.start})") from error
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error.strerror or error}") from error
    try:
        return json.loads(text)
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to be COCO data") from None
    except json.JSONDecodeError as error:
        # The position "char N of M" shows a truncated file at a glance (N close to M).
        raise DataError(
            f"{path}: malformed JSON at line {error.lineno} column {error.colno} "
            f"(char {error.pos} of {len(text)}): {error.msg}"
        ) from error


def load_coco(annotation_file: str | os.PathLike[str]) -> COCO:
    """Read and check a COCO annotation file; return a pycocotools index over it.

    Checked (each failure is a :class:`DataError` naming the file and the id): the top level is an
    object with ``images``, ``annotations`` and ``categories`` lists; every image has an integer
    ``id``, a ``file_name`` and a positive integer ``width`` and ``height``; every category an integer
    ``id`` and a ``name``; every annotation an integer ``id``, an ``image_id`` and a
    ``category_id`` that exist, and a ``bbox`` of four finite numbers ``[x, y, width, height]``;
    ids are unique. ``iscrowd`` must be 0 or 1 and defaults to 0; ``area`` defaults to the box's
    width × height (COCOeval needs both). Box geometry is judged by :class:`CocoDetection`.
    """
    path = Path(annotation_file)
    data = read_json(path)
    _check_structure(data, path)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints "creating index..."
        coco.createIndex()
    return coco


class CocoDetection(Dataset[Sample]):
    """A COCO-format detection dataset yielding ``(image, target)`` in torchvision's format.

    Without ``transforms`` the image is a ``uint8`` :class:`~torchvision.tv_tensors.Image`
    (3×H×W, RGB) at its stored size; the pipelines of :mod:`netadapt.data.transforms` turn it into
    ``float32`` in [0, 1], which is what torchvision's detection models take. The target holds

    - ``boxes``: :class:`~torchvision.tv_tensors.BoundingBoxes`, XYXY pixels, ``canvas_size`` (H, W);
      shape (0, 4) for an image without annotations (such images are kept);
    - ``labels``: int64, contiguous 1..C (0 is the background);
    - ``image_id``: the COCO image id (int);
    - ``orig_size``: (height, width) of the stored image, so that predictions made on a resized
      image can be mapped back (:func:`netadapt.engine.evaluate.run_evaluation` does);
    - ``iscrowd`` (bool, per box) unless ``train``: with ``train=True`` crowd regions are left out
      of the targets altogether, as they are never positives for SSD.

    Checks at construction: everything :func:`load_coco` checks; every image file exists (and
    decodes, with ``verify_images=True``, which costs a read of every file); every box lies inside
    its image with a positive size. A box that fails the last check is an error with
    ``strict=True``; by default it is repaired (clipped to the image, or dropped when it has no
    positive size or lies entirely outside) and the repairs are counted in one
    :class:`DataWarning`. The annotations held by :attr:`coco` stay as in the file, so that
    evaluation is against the ground truth as published.
    """

    def __init__(
        self,
        images_dir: str | os.PathLike[str],
        annotation_file: str | os.PathLike[str],
        *,
        transforms: Transforms | None = None,
        train: bool = False,
        strict: bool = False,
        verify_images: bool = False,
    ) -> None:
        self.images_dir = Path(images_dir)
        self.annotation_file = Path(annotation_file)
        self.transforms = transforms
        self.train = train
        self.coco = load_coco(self.annotation_file)
        self.image_ids: list[int] = sorted(self.coco.imgs)
        self._category_ids: list[int] = sorted(self.coco.cats)
        self._labels = {category_id: label for label, category_id in enumerate(self._category_ids, 1)}
        self._check_image_files(verify_images=verify_images)
        self._targets = self._prepare_targets(strict=strict)

    @property
    def num_classes(self) -> int:
        """Number of classes including the background (C + 1)."""
        return len(self._category_ids) + 1

    @property
    def class_names(self) -> list[str]:
        """Class names indexed by contiguous label; index 0 is ``"__background__"``."""
        return [BACKGROUND] + [self.coco.cats[category_id]["name"] for category_id in self._category_ids]

    def label_to_category_id(self, label: int) -> int:
        """The COCO category id of a contiguous label (1..C)."""
        index = operator.index(label)
        if not 1 <= index < self.num_classes:
            raise ValueError(
                f"label {index} is not a class of {self.annotation_file} "
                f"(labels are 1..{self.num_classes - 1}; 0 is the background)"
            )
        return self._category_ids[index - 1]

    def category_id_to_label(self, category_id: int) -> int:
        """The contiguous label (1..C) of a COCO category id."""
        try:
            return self._labels[category_id]
        except KeyError:
            raise ValueError(f"{self.annotation_file}: unknown category id {category_id!r}") from None

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> Sample:
        image_id = self.image_ids[index]
        info = self.coco.imgs[image_id]
        height, width = info["height"], info["width"]
        boxes, labels, crowd = self._targets[image_id]
        image = self._load_image(image_id)
        target: dict[str, Any] = {
            "boxes": tv_tensors.BoundingBoxes(
                torch.tensor(boxes), format=tv_tensors.BoundingBoxFormat.XYXY, canvas_size=(height, width)
            ),
            "labels": torch.tensor(labels),
            "image_id": image_id,
            "orig_size": (height, width),
        }
        if not self.train:
            target["iscrowd"] = torch.tensor(crowd)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.annotation_file)!r}, images={len(self)}, "
            f"classes={self.num_classes - 1}, train={self.train})"
        )

    def _image_path(self, image_id: int) -> Path:
        return self.images_dir / self.coco.imgs[image_id]["file_name"]

    def _load_image(self, image_id: int) -> tv_tensors.Image:
        path = self._image_path(image_id)
        try:
            with Image.open(path) as stored:
                rgb = to_rgb(stored)
        except IMAGE_ERRORS as error:
            raise DataError(f"{path}: cannot decode image (image id {image_id}): {error}") from error
        info = self.coco.imgs[image_id]
        if rgb.size != (info["width"], info["height"]):
            raise DataError(
                f"{path}: image is {rgb.width}x{rgb.height} pixels but {self.annotation_file} says "
                f"{info['width']}x{info['height']} (image id {image_id})"
            )
        return tv_tensors.Image(F.pil_to_tensor(rgb))

    def _check_image_files(self, *, verify_images: bool) -> None:
        missing = [image_id for image_id in self.image_ids if not self._image_path(image_id).is_file()]
        if missing:
            more = f"; {len(missing) - 1} more listed images are missing too" if len(missing) > 1 else ""
            raise DataError(
                f"{self._image_path(missing[0])}: image file not found "
                f"(image id {missing[0]} in {self.annotation_file}{more})"
            )
        if not verify_images:
            return
        for image_id in self.image_ids:
            path = self._image_path(image_id)
            try:
                with Image.open(path) as image:
                    image.verify()
            except IMAGE_ERRORS as error:
                raise DataError(f"{path}: unreadable image (image id {image_id}): {error}") from error

    def _prepare_targets(self, *, strict: bool) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per image: XYXY boxes, labels and crowd flags, after the box checks (see the class doc)."""
        repairs: Counter[str] = Counter()
        first_repair = ""
        targets = {}
        for image_id in self.image_ids:
            image = self.coco.imgs[image_id]
            boxes, labels, crowd = [], [], []
            for annotation in self.coco.imgToAnns[image_id]:
                box, repair = _check_box(annotation, image, path=self.annotation_file, strict=strict)
                if repair is not None:
                    repairs[repair] += 1
                    first_repair = first_repair or f"annotation id {annotation['id']} in image id {image_id}"
                if box is None or (self.train and annotation["iscrowd"]):
                    continue
                boxes.append(box)
                labels.append(self._labels[annotation["category_id"]])
                crowd.append(bool(annotation["iscrowd"]))
            targets[image_id] = (
                np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                np.asarray(labels, dtype=np.int64),
                np.asarray(crowd, dtype=bool),
            )
        if repairs:
            done = ", ".join(
                message.format(n=repairs[kind], boxes="box" if repairs[kind] == 1 else "boxes")
                for kind, message in _REPAIRS.items()
                if repairs[kind]
            )
            warnings.warn(
                f"{self.annotation_file}: {done} (first: {first_repair}; strict=True makes these errors)",
                DataWarning,
                stacklevel=3,
            )
        return targets


def collate_detection(batch: Sequence[Sample]) -> tuple[list[Any], ...]:
    """Collate ``(image, target)`` pairs into ``([images], [targets])``.

    Detection images differ in size and targets in length, so nothing is stacked; torchvision's
    detection models take lists.
    """
    return tuple(list(items) for items in zip(*batch))


def _check_box(
    annotation: dict[str, Any], image: dict[str, Any], *, path: Path, strict: bool
) -> tuple[list[float] | None, str | None]:
    """Judge one box against its image: ``(xyxy box or None if dropped, repair kind or None)``."""
    x, y, w, h = annotation["bbox"]
    width, height = image["width"], image["height"]
    where = f"{path}: annotation id {annotation['id']} (image id {image['id']}): box {annotation['bbox']}"
    x1, y1, x2, y2 = x, y, x + w, y + h
    if w <= 0 or h <= 0:
        problem, repair = "has non-positive width or height", "non-positive"
    elif x1 >= width or y1 >= height or x2 <= 0 or y2 <= 0:
        problem, repair = f"lies entirely outside the {width}x{height} image", "outside"
    elif x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        problem, repair = f"extends outside the {width}x{height} image", "clipped"
    else:
        return [x1, y1, x2, y2], None
    if strict:
        raise DataError(f"{where} {problem} (strict mode)")
    if repair != "clipped":
        return None, repair
    return [max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)], repair


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite JSON number that a float holds (a 400-digit integer is not: float() overflows)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (a 400-digit number stays one readable line)."""
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 200 else f"an integer of {len(str(abs(value)))} digits"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unique_ids(records: list[Any], key: str, kind: str, path: Path) -> dict[int, dict[str, Any]]:
    """Index the records of one top-level list by their integer ``id``, rejecting duplicates."""
    by_id: dict[int, dict[str, Any]] = {}
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataError(f"{path}: {key}[{index}] must be an object, got {type(record).__name__}")
        record_id = record.get("id")
        if not _is_int(record_id):
            raise DataError(f"{path}: {key}[{index}] has no integer 'id' (got {record_id!r})")
        if record_id in by_id:
            raise DataError(f"{path}: {kind} id {record_id} appears more than once")
        by_id[record_id] = record
    return by_id


def _check_structure(data: Any, path: Path) -> None:
    """The checks of :func:`load_coco` (also fills the ``iscrowd`` and ``area`` defaults)."""
    if not isinstance(data, dict):
        raise DataError(f"{path}: the top level must be a JSON object, got {type(data).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise DataError(f"{path}: missing top-level key(s): {', '.join(missing)}")
    for key in REQUIRED_KEYS:
        if not isinstance(data[key], list):
            raise DataError(f"{path}: '{key}' must be a list, got {type(data[key]).__name__}")

    images = _unique_ids(data["images"], "images", "image", path)
    for image_id, image in images.items():
        file_name = image.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            raise DataError(
                f"{path}: image id {image_id}: 'file_name' must be a non-empty string, got {file_name!r}"
            )
        for side in ("width", "height"):
            if not (_is_int(image.get(side)) and 0 < image[side] <= MAX_IMAGE_SIDE):
                raise DataError(
                    f"{path}: image id {image_id}: '{side}' must be a positive integer up to {MAX_IMAGE_SIDE}, "
                    f"got {_shown(image.get(side))}"
                )

    categories = _unique_ids(data["categories"], "categories", "category", path)
    for category_id, category in categories.items():
        if not isinstance(category.get("name"), str):
            raise DataError(
                f"{path}: category id {category_id}: 'name' must be a string, got {category.get('name')!r}"
            )

    annotations = _unique_ids(data["annotations"], "annotations", "annotation", path)
    for annotation_id, annotation in annotations.items():
        where = f"{path}: annotation id {annotation_id}"
        image_id = annotation.get("image_id")
        if not _is_int(image_id) or image_id not in images:
            raise DataError(f"{where}: unknown image id {image_id!r}")
        where = f"{where} (image id {image_id})"
        category_id = annotation.get("category_id")
        if not _is_int(category_id) or category_id not in categories:
            raise DataError(f"{where}: unknown category id {category_id!r}")
        bbox = annotation.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))):
            raise DataError(
                f"{where}: 'bbox' must be four finite numbers [x, y, width, height], got {_shown(bbox)}"
            )
        annotation.setdefault("iscrowd", 0)
        if annotation["iscrowd"] not in (0, 1):
            raise DataError(f"{where}: 'iscrowd' must be 0 or 1, got {annotation['iscrowd']!r}")
        if "area" in annotation:  # COCOeval sorts boxes into size ranges by it: a string is a TypeError there, NaN drops the box
            if not (_is_number(annotation["area"]) and annotation["area"] >= 0):
                raise DataError(f"{where}: 'area' must be a finite number >= 0, got {_shown(annotation['area'])}")
        annotation.setdefault("area", bbox[2] * bbox[3])
