"""Dataset plugins (``register_datasets``): where a dataset's splits are on disk.

A dataset plugin is an object with ``name`` and ``splits(root=None) -> dict[str, DataSplit]``
(at least ``train`` and ``val``), each split a COCO-format annotation file and an image folder,
read with :class:`netadapt.data.coco.CocoDetection`. Built in:

- ``coco``: ``root`` is a folder in either layout —
  ``train.json``, ``val.json``, ``images/train/``, ``images/val/`` (what ``netadapt data demo`` writes), or
  COCO 2017's ``annotations/instances_{train,val}2017.json``, ``train2017/``, ``val2017/``;
- ``demo``: the embedded demo dataset, generated once into the cache (``netadapt data demo``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from netadapt.data.coco import CocoDetection
from netadapt.data.transforms import eval_transforms, train_transforms
from netadapt.errors import DataError
from netadapt.hookspecs import hookimpl


@dataclass(frozen=True)
class DataSplit:
    images: Path
    annotations: Path

    def open(self, *, train: bool, input_size: int) -> CocoDetection:
        """The split as a dataset with the SSD training (``train``) or evaluation transforms."""
        transforms = train_transforms(input_size) if train else eval_transforms(input_size)
        return CocoDetection(self.images, self.annotations, transforms=transforms, train=train)


class CocoSource:
    name = "coco"

    def splits(self, root: str | Path | None = None) -> dict[str, DataSplit]:
        if root is None:
            raise DataError("dataset 'coco' needs a folder: pass --data DIR")
        root = Path(root)
        layouts = (
            {split: DataSplit(root / "images" / split, root / f"{split}.json") for split in ("train", "val")},
            {
                split: DataSplit(root / f"{split}2017", root / "annotations" / f"instances_{split}2017.json")
                for split in ("train", "val")
            },
        )
        for layout in layouts:
            if all(split.annotations.is_file() for split in layout.values()):
                return layout
        raise DataError(
            f"{root}: no COCO-format dataset found: expected train.json, val.json and images/{{train,val}}/, "
            "or annotations/instances_{train,val}2017.json with train2017/ and val2017/"
        )


class DemoSource:
    name = "demo"

    def splits(self, root: str | Path | None = None) -> dict[str, DataSplit]:
        from netadapt.data.demo import demo_dataset_dir

        return CocoSource().splits(root or demo_dataset_dir())


@hookimpl
def register_datasets(register) -> None:
    register(CocoSource.name, CocoSource())
    register(DemoSource.name, DemoSource())
