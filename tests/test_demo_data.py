"""The embedded demo dataset: COCO validity, determinism, atomic writing, cache, crops."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from netadapt.data import demo
from netadapt.data.demo import (
    DEMO_CLASSES,
    GENERATOR_VERSION,
    demo_dataset_dir,
    demo_image,
    generate_demo_dataset,
    render_object_crops,
)
from netadapt.errors import DataError, OutputError


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("demo") / "data", num_train=12, num_val=4)


@pytest.mark.parametrize("split", ["train", "val"])
def test_small_dataset_is_valid_coco(small_dataset: Path, split: str) -> None:
    coco = COCO(str(small_dataset / f"{split}.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(DEMO_CLASSES)
    assert coco.getCatIds() == list(range(1, len(DEMO_CLASSES) + 1))
    assert len(coco.getImgIds()) == {"train": 12, "val": 4}[split]
    for image in coco.loadImgs(coco.getImgIds()):
        with Image.open(small_dataset / "images" / split / image["file_name"]) as pixels:
            assert pixels.size == (image["width"], image["height"]) == (320, 320)
            assert pixels.mode == "RGB"
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        assert 1 <= len(annotations) <= 6
        for annotation in annotations:
            x, y, w, h = annotation["bbox"]
            assert w > 0 and h > 0 and x >= 0 and y >= 0
            assert x + w <= image["width"] and y + h <= image["height"]
            assert 0 < annotation["area"] <= w * h
            assert annotation["iscrowd"] == 0
    if split == "train":  # 12 images start with classes 0..5 in turn
        assert {a["category_id"] for a in coco.dataset["annotations"]} == set(coco.getCatIds())


def test_sizes_range_from_small_to_a_third_of_the_image(small_dataset: Path) -> None:
    coco = json.loads((small_dataset / "train.json").read_text())
    sides = [max(w, h) for _, _, w, h in (a["bbox"] for a in coco["annotations"])]
    assert min(sides) < 32 and max(sides) > 64
    assert max(sides) < 320 / 3 * 1.3  # stretching by up to 1.25:1 may exceed a third a little


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    options = {"num_train": 3, "num_val": 2, "image_size": 128}
    first = _files(generate_demo_dataset(tmp_path / "a", seed=7, **options))
    assert _files(generate_demo_dataset(tmp_path / "b", seed=7, **options)) == first
    other = _files(generate_demo_dataset(tmp_path / "c", seed=8, **options))
    assert other.keys() == first.keys()
    assert all(other[name] != first[name] for name in first)


def test_num_classes_keeps_the_first_classes(tmp_path: Path) -> None:
    root = generate_demo_dataset(tmp_path / "d", num_train=6, num_val=1, num_classes=2)
    coco = json.loads((root / "train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(DEMO_CLASSES[:2])
    assert {a["category_id"] for a in coco["annotations"]} == {1, 2}


@pytest.mark.parametrize("options", [{"num_classes": 0}, {"num_classes": 7}, {"num_train": 0}])
def test_invalid_options_are_rejected(tmp_path: Path, options: dict[str, int]) -> None:
    (name, value), = options.items()
    with pytest.raises(ValueError, match=f"{name}.*{value}"):
        generate_demo_dataset(tmp_path / "d", **options)
    assert list(tmp_path.iterdir()) == []


def test_non_empty_out_dir_is_refused_unless_overwrite(tmp_path: Path) -> None:
    out_dir = tmp_path / "data"
    out_dir.mkdir()
    (out_dir / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match=re.escape(str(out_dir))):
        generate_demo_dataset(out_dir, num_train=1, num_val=1)
    assert (out_dir / "mine.txt").read_text() == "keep me"

    # overwrite replaces only a folder holding a demo dataset (its marker): a user's folder stays.
    with pytest.raises(DataError, match="no netadapt demo dataset"):
        generate_demo_dataset(out_dir, num_train=1, num_val=1, overwrite=True)
    assert (out_dir / "mine.txt").read_text() == "keep me"

    demo_dir = tmp_path / "demo"
    generate_demo_dataset(demo_dir, num_train=1, num_val=1)
    (demo_dir / "stale.txt").write_text("left by an older dataset")
    generate_demo_dataset(demo_dir, num_train=1, num_val=1, overwrite=True)
    assert not (demo_dir / "stale.txt").exists()
    assert (demo_dir / "train.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "demo"]


def test_an_empty_out_dir_is_filled(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    generate_demo_dataset(tmp_path / "data", num_train=1, num_val=1)
    assert (tmp_path / "data" / "val.json").is_file()


def test_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_image = demo._save_image
    saved: list[Path] = []

    def fail_on_third(pixels: np.ndarray, path: Path) -> None:
        if len(saved) == 2:
            raise OSError("disk full")
        save_image(pixels, path)
        saved.append(path)

    monkeypatch.setattr(demo, "_save_image", fail_on_third)
    with pytest.raises(OutputError, match="data: cannot write: disk full"):  # one line, not a traceback
        generate_demo_dataset(tmp_path / "data", num_train=4, num_val=1)
    assert saved and all(not path.exists() for path in saved)
    assert list(tmp_path.iterdir()) == []


def _count_writes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Make the cached dataset tiny (so the test is fast) and record each time one is written."""
    write_dataset = demo._write_dataset
    writes: list[Path] = []

    def tiny(root: Path, **options: int) -> None:
        writes.append(root)
        write_dataset(root, **{**options, "num_train": 2, "num_val": 1})

    monkeypatch.setattr(demo, "_write_dataset", tiny)
    return writes


def test_demo_dataset_dir_generates_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes = _count_writes(monkeypatch)
    first = demo_dataset_dir(cache_dir=tmp_path)
    assert first == tmp_path / f"demo-v{GENERATOR_VERSION}-seed0"
    assert (first / "train.json").is_file() and len(writes) == 1
    before = _files(first)
    assert demo_dataset_dir(cache_dir=tmp_path) == first
    assert len(writes) == 1 and _files(first) == before

    other_seed = demo_dataset_dir(cache_dir=tmp_path, seed=3)
    assert other_seed.name == f"demo-v{GENERATOR_VERSION}-seed3" and len(writes) == 2
    assert sorted(tmp_path.iterdir()) == [first, other_seed]


def test_demo_image_renders_one_picture_the_datasets_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`netadapt export` without --image checks on the demo's first val image: rendered alone, not the 500 of the dataset."""
    dataset = generate_demo_dataset(tmp_path / "small", num_train=1, num_val=2)
    writes = _count_writes(monkeypatch)
    image = demo_image(cache_dir=tmp_path / "cache")
    assert writes == [] and [path.name for path in (tmp_path / "cache").rglob("*") if path.is_file()] == ["000001.jpg"]
    assert image.read_bytes() == (dataset / "images" / "val" / "000001.jpg").read_bytes()
    assert demo_image(index=1, cache_dir=tmp_path / "cache").read_bytes() == (dataset / "images" / "val" / "000002.jpg").read_bytes()
    full = demo_dataset_dir(cache_dir=tmp_path / "cache")
    assert demo_image(cache_dir=tmp_path / "cache") == full / "images" / "val" / "000001.jpg"  # the dataset's, once it is there


def test_demo_dataset_dir_uses_netadapt_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _count_writes(monkeypatch)
    monkeypatch.setenv("NETADAPT_CACHE", str(tmp_path / "env"))
    assert demo_dataset_dir().parent == tmp_path / "env"


def test_demo_dataset_dir_losing_a_race_uses_the_winner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / f"demo-v{GENERATOR_VERSION}-seed0"
    write_dataset = demo._write_dataset

    def another_process_finishes_first(root: Path, **options: int) -> None:
        small = {**options, "num_train": 1, "num_val": 1}
        write_dataset(root, **small)
        write_dataset(target, **small)
        (target / "winner").touch()

    monkeypatch.setattr(demo, "_write_dataset", another_process_finishes_first)
    assert demo_dataset_dir(cache_dir=tmp_path) == target
    assert (target / "winner").exists()
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_demo_dataset_dir_refuses_a_foreign_folder(tmp_path: Path) -> None:
    target = tmp_path / f"demo-v{GENERATOR_VERSION}-seed0"
    target.mkdir()
    (target / "something").touch()
    with pytest.raises(DataError, match=re.escape(str(target))):
        demo_dataset_dir(cache_dir=tmp_path)


def test_render_object_crops() -> None:
    images, labels = render_object_crops(num_per_class=3, size=48, seed=1)
    assert images.shape == (3 * len(DEMO_CLASSES), 48, 48, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    assert labels.tolist() == [label for label in range(len(DEMO_CLASSES)) for _ in range(3)]
    again, _ = render_object_crops(num_per_class=3, size=48, seed=1)
    assert np.array_equal(images, again)
    other, _ = render_object_crops(num_per_class=3, size=48, seed=2)
    assert not np.array_equal(images, other)
    assert images.std() > 20  # not blank

    few, few_labels = render_object_crops(num_per_class=2, size=16, num_classes=2)
    assert few.shape == (4, 16, 16, 3) and few_labels.tolist() == [0, 0, 1, 1]
