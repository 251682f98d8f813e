"""CocoDetection, its up-front checks, collate_detection and the SSD transforms, on a tiny COCO set."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import tv_tensors

from netadapt.data.coco import CocoDetection, DataWarning, collate_detection, load_coco
from netadapt.data.transforms import SkipWithoutBoxes, eval_transforms, train_transforms
from netadapt.errors import DataError

# Category ids are deliberately not contiguous: labels must become 1, 2, 3 in id order.
CATEGORIES = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}, {"id": 9, "name": "bird"}]


def _annotations() -> list[dict[str, Any]]:
    return [
        {"id": 11, "image_id": 1, "category_id": 3, "bbox": [10, 5, 20, 15], "area": 300, "iscrowd": 0},
        {"id": 12, "image_id": 1, "category_id": 7, "bbox": [30, 20, 10, 10], "area": 100, "iscrowd": 0},
        {"id": 13, "image_id": 1, "category_id": 3, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 1},
        {"id": 14, "image_id": 5, "category_id": 9, "bbox": [2.5, 3.5, 40, 30]},
    ]


def _images() -> list[dict[str, Any]]:
    return [
        {"id": 1, "file_name": "a.png", "width": 64, "height": 48},
        {"id": 2, "file_name": "b.jpg", "width": 40, "height": 30},  # no annotations
        {"id": 5, "file_name": "sub/c.jpg", "width": 50, "height": 50},
    ]


def _pixel(x: int, y: int) -> tuple[int, int, int]:
    return (x * 3 % 256, y * 5 % 256, (x + y) % 256)


def write_dataset(root: Path, **changes: Any) -> tuple[Path, Path]:
    """Write the images and ``instances.json`` under ``root``; ``changes`` replace top-level keys."""
    images_dir = root / "images"
    for info in _images():
        path = images_dir / info["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", (info["width"], info["height"]))
        image.putdata([_pixel(x, y) for y in range(info["height"]) for x in range(info["width"])])
        image.save(path)
    data = {"images": _images(), "annotations": _annotations(), "categories": CATEGORIES, **changes}
    annotation_file = root / "instances.json"
    annotation_file.write_text(json.dumps(data))
    return images_dir, annotation_file


@pytest.fixture
def dataset_files(tmp_path: Path) -> tuple[Path, Path]:
    return write_dataset(tmp_path)


def test_samples_are_in_torchvision_detection_format(dataset_files: tuple[Path, Path]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # clean data: nothing to repair
        dataset = CocoDetection(*dataset_files)
    assert len(dataset) == 3
    image, target = dataset[0]
    assert isinstance(image, tv_tensors.Image)
    assert image.dtype == torch.uint8 and image.shape == (3, 48, 64)
    assert tuple(image[:, 7, 13].tolist()) == _pixel(13, 7)  # PNG: exact pixels, RGB order
    boxes = target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes)
    assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY and tuple(boxes.canvas_size) == (48, 64)
    assert boxes.tolist() == [[10, 5, 30, 20], [30, 20, 40, 30], [0, 0, 5, 5]]
    assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == [1, 2, 1]
    assert target["iscrowd"].tolist() == [False, False, True]
    assert target["image_id"] == 1 and target["orig_size"] == (48, 64)
    _, target = dataset[2]  # nested file name, fractional box
    assert target["image_id"] == 5 and target["boxes"].tolist() == [[2.5, 3.5, 42.5, 33.5]]


def test_labels_are_contiguous_and_map_back_to_category_ids(dataset_files: tuple[Path, Path]) -> None:
    dataset = CocoDetection(*dataset_files)
    assert dataset.num_classes == 4
    assert dataset.class_names == ["__background__", "cat", "dog", "bird"]
    assert [dataset.label_to_category_id(label) for label in (1, 2, 3)] == [3, 7, 9]
    assert dataset.label_to_category_id(torch.tensor(2)) == 7
    assert [dataset.category_id_to_label(category_id) for category_id in (3, 7, 9)] == [1, 2, 3]
    for label in (0, 4):
        with pytest.raises(ValueError, match="labels are 1..3"):
            dataset.label_to_category_id(label)
    with pytest.raises(ValueError, match="unknown category id 8"):
        dataset.category_id_to_label(8)


def test_crowd_boxes_are_left_out_of_training_targets(dataset_files: tuple[Path, Path]) -> None:
    _, target = CocoDetection(*dataset_files, train=True)[0]
    assert target["boxes"].tolist() == [[10, 5, 30, 20], [30, 20, 40, 30]]
    assert target["labels"].tolist() == [1, 2]
    assert "iscrowd" not in target


@pytest.mark.parametrize("train", [False, True])
def test_images_without_annotations_are_kept(dataset_files: tuple[Path, Path], train: bool) -> None:
    dataset = CocoDetection(*dataset_files, train=train)
    assert dataset.image_ids == [1, 2, 5]
    image, target = dataset[1]
    assert image.shape == (3, 30, 40)
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    assert target["labels"].dtype == torch.int64 and target["image_id"] == 2


def test_collate_detection_keeps_lists(dataset_files: tuple[Path, Path]) -> None:
    loader = DataLoader(CocoDetection(*dataset_files), batch_size=2, collate_fn=collate_detection)
    images, targets = next(iter(loader))
    assert isinstance(images, list) and isinstance(targets, list)
    assert [image.shape for image in images] == [(3, 48, 64), (3, 30, 40)]
    assert [target["image_id"] for target in targets] == [1, 2]


def _bad_annotation(**fields: Any) -> dict[str, Any]:
    """The annotations with one more, id 99 on image id 1, changed by ``fields``."""
    extra = {"id": 99, "image_id": 1, "category_id": 3, "bbox": [1, 1, 5, 5], **fields}
    return {"annotations": [*_annotations(), extra]}


ANNOTATION_99 = "annotation id 99 (image id 1)"
DUPLICATE_IMAGE = {"id": 1, "file_name": "a.png", "width": 64, "height": 48}


@pytest.mark.parametrize(
    ("changes", "strict", "expected"),
    [
        (_bad_annotation(image_id=42), False, "annotation id 99: unknown image id 42"),
        (_bad_annotation(category_id=4), False, f"{ANNOTATION_99}: unknown category id 4"),
        (_bad_annotation(bbox=[1, 2, 3]), False, f"{ANNOTATION_99}: 'bbox' must be four finite numbers"),
        (_bad_annotation(iscrowd=2), False, f"{ANNOTATION_99}: 'iscrowd' must be 0 or 1"),
        (_bad_annotation(bbox=[5, 5, 0, 10]), True, f"{ANNOTATION_99}: box [5, 5, 0, 10] has non-positive"),
        (_bad_annotation(bbox=[5, 5, 10, -1]), True, f"{ANNOTATION_99}: box [5, 5, 10, -1] has non-positive"),
        (
            _bad_annotation(bbox=[60, 40, 10, 5]),
            True,
            f"{ANNOTATION_99}: box [60, 40, 10, 5] extends outside the 64x48 image",
        ),
        (_bad_annotation(bbox=[-1, 0, 10, 5]), True, f"{ANNOTATION_99}: box [-1, 0, 10, 5] extends outside"),
        (_bad_annotation(bbox=[70, 0, 10, 5]), True, f"{ANNOTATION_99}: box [70, 0, 10, 5] lies entirely"),
        ({"images": [*_images(), DUPLICATE_IMAGE]}, False, "image id 1 appears more than once"),
        ({"images": [{**DUPLICATE_IMAGE, "width": 0}]}, False, "image id 1: 'width' must be a positive"),
        ({"images": [{**DUPLICATE_IMAGE, "height": 48.5}]}, False, "image id 1: 'height' must be a positive"),
        ({"categories": [{"id": 3}]}, False, "category id 3: 'name' must be a string"),
    ],
)
def test_bad_annotations_raise_data_error_naming_file_and_id(
    tmp_path: Path, changes: dict[str, Any], strict: bool, expected: str
) -> None:
    images_dir, annotation_file = write_dataset(tmp_path, **changes)
    with pytest.raises(DataError) as raised:
        CocoDetection(images_dir, annotation_file, strict=strict)
    message = str(raised.value)
    assert message.startswith(f"{annotation_file}: ") and "\n" not in message
    assert expected in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"images": [}', "malformed JSON at line 1 column 13"),
        ('{\n"images": [],\n"annotations": [{"id": 1, "image_id"', "malformed JSON at line 3"),  # truncated
        ("[]", "top level must be a JSON object"),
        ('{"images": [], "categories": []}', "missing top-level key(s): annotations"),
        ('{"images": {}, "annotations": [], "categories": []}', "'images' must be a list"),
    ],
)
def test_malformed_annotation_files_raise_data_error(tmp_path: Path, text: str, expected: str) -> None:
    annotation_file = tmp_path / "instances_val.json"
    annotation_file.write_text(text)
    with pytest.raises(DataError, match="instances_val.json") as raised:
        CocoDetection(tmp_path, annotation_file)
    assert expected in str(raised.value)


def test_truncated_real_file_names_the_position(dataset_files: tuple[Path, Path]) -> None:
    images_dir, annotation_file = dataset_files
    text = annotation_file.read_text()
    annotation_file.write_text(text[: len(text) // 2])
    expected = rf"instances.json: malformed JSON .* \(char \d+ of {len(text) // 2}\)"
    with pytest.raises(DataError, match=expected):
        CocoDetection(images_dir, annotation_file)


def test_missing_annotation_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nothing.json: file not found"):
        load_coco(tmp_path / "nothing.json")


def test_missing_image_file_is_named_with_its_id(dataset_files: tuple[Path, Path]) -> None:
    images_dir, annotation_file = dataset_files
    (images_dir / "sub" / "c.jpg").unlink()
    expected = r"sub/c\.jpg: image file not found \(image id 5 in .*instances\.json\)"
    with pytest.raises(DataError, match=expected):
        CocoDetection(images_dir, annotation_file)


def test_unreadable_image_file_is_named_with_its_id(dataset_files: tuple[Path, Path]) -> None:
    images_dir, annotation_file = dataset_files
    (images_dir / "b.jpg").write_bytes(b"this is not a JPEG" * 10)
    with pytest.raises(DataError, match=r"b\.jpg: unreadable image \(image id 2\)"):
        CocoDetection(images_dir, annotation_file, verify_images=True)
    dataset = CocoDetection(images_dir, annotation_file)  # existence only, by default
    dataset[0]
    with pytest.raises(DataError, match=r"b\.jpg: cannot decode image \(image id 2\)"):
        dataset[1]


def test_image_size_differing_from_the_annotation_file_is_a_data_error(
    dataset_files: tuple[Path, Path],
) -> None:
    images_dir, annotation_file = dataset_files
    Image.new("RGB", (32, 32)).save(images_dir / "a.png")
    with pytest.raises(DataError, match=r"a\.png: image is 32x32 pixels but .* says 64x48 \(image id 1\)"):
        CocoDetection(images_dir, annotation_file)[0]


def test_default_mode_repairs_boxes_with_one_counted_warning(tmp_path: Path) -> None:
    extra = [
        {"id": 21, "image_id": 1, "category_id": 3, "bbox": [60, 40, 10, 10]},  # partly outside: clip
        {"id": 22, "image_id": 1, "category_id": 3, "bbox": [-5, -5, 10, 10]},  # partly outside: clip
        {"id": 23, "image_id": 1, "category_id": 3, "bbox": [5, 5, 0, 10]},  # zero width: drop
        {"id": 24, "image_id": 5, "category_id": 7, "bbox": [50, 0, 10, 10]},  # entirely outside: drop
    ]
    images_dir, annotation_file = write_dataset(tmp_path, annotations=[*_annotations(), *extra])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = CocoDetection(images_dir, annotation_file, train=True)
    repairs = [warning for warning in caught if issubclass(warning.category, DataWarning)]
    assert len(repairs) == 1
    message = str(repairs[0].message)
    assert message.startswith(f"{annotation_file}: ")
    assert "clipped 2 boxes that extended outside their image" in message
    assert "dropped 1 box with non-positive width or height" in message
    assert "dropped 1 box lying entirely outside their image" in message
    assert "annotation id 21" in message
    _, target = dataset[0]
    assert target["boxes"].tolist() == [[10, 5, 30, 20], [30, 20, 40, 30], [60, 40, 64, 48], [0, 0, 5, 5]]
    assert dataset[2][1]["boxes"].tolist() == [[2.5, 3.5, 42.5, 33.5]]
    # The ground truth used for evaluation stays as published.
    assert dataset.coco.anns[21]["bbox"] == [60, 40, 10, 10]


def _check_transformed(image: torch.Tensor, target: dict[str, Any], size: int) -> None:
    assert isinstance(image, tv_tensors.Image)
    assert image.dtype == torch.float32 and image.shape == (3, size, size)
    assert 0.0 <= image.min() and image.max() <= 1.0
    boxes = target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes) and tuple(boxes.canvas_size) == (size, size)
    assert len(target["labels"]) == len(boxes)
    if "iscrowd" in target:
        assert len(target["iscrowd"]) == len(boxes)
    if len(boxes):
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= size).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()


@pytest.mark.parametrize("train", [False, True])
def test_train_transforms_give_float_images_of_the_size_with_valid_boxes(
    dataset_files: tuple[Path, Path], train: bool
) -> None:
    dataset = CocoDetection(*dataset_files, transforms=train_transforms(96), train=train)
    torch.manual_seed(0)
    kept_boxes = 0
    for _ in range(15):
        for index in range(len(dataset)):  # image id 2 has no boxes
            image, target = dataset[index]
            _check_transformed(image, target, 96)
            kept_boxes += len(target["boxes"])
            if index == 1:
                assert len(target["boxes"]) == 0
    assert kept_boxes > 0


def test_eval_transforms_resize_image_and_boxes(dataset_files: tuple[Path, Path]) -> None:
    dataset = CocoDetection(*dataset_files, transforms=eval_transforms(32))
    for index in range(len(dataset)):
        _check_transformed(*dataset[index], 32)
    image, target = dataset[0]
    # 64x48 → 32x32: x halves, y scales by 2/3.
    assert torch.allclose(target["boxes"][0], torch.tensor([5.0, 5 * 2 / 3, 15.0, 20 * 2 / 3]))
    assert target["orig_size"] == (48, 64)


def test_skip_without_boxes_only_applies_the_transform_to_samples_with_boxes() -> None:
    calls = []

    class Recorder(torch.nn.Module):
        def forward(self, *inputs: Any) -> Any:
            calls.append(inputs)
            return inputs

    skip = SkipWithoutBoxes(Recorder())
    image = tv_tensors.Image(torch.zeros(3, 8, 8, dtype=torch.uint8))
    empty = {"boxes": tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=(8, 8))}
    assert skip(image, empty) == (image, empty) and calls == []
    assert skip(image) is image and calls == []
    box = torch.tensor([[1.0, 1, 4, 4]])
    one = {"boxes": tv_tensors.BoundingBoxes(box, format="XYXY", canvas_size=(8, 8))}
    skip(image, one)
    assert len(calls) == 1


@pytest.mark.parametrize("size", [0, -3, 1.5, True])
def test_transform_sizes_are_checked(size: Any) -> None:
    for build in (train_transforms, eval_transforms):
        with pytest.raises(ValueError, match="size must be a positive integer"):
            build(size)
