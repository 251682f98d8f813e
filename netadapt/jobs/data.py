"""The data job (``netadapt data demo``): the embedded demo detection dataset written to a folder."""

from __future__ import annotations

from pathlib import Path

from netadapt.data.demo import generate_demo_dataset


def demo_dataset(out: Path, *, seed: int = 0, train: int = 400, val: int = 100, image_size: int = 320, overwrite: bool = False) -> Path:
    """Write the demo dataset (COCO format, deterministic from ``seed``: ``train`` and ``val`` images of ``image_size``
    pixels) into ``out``, which must not exist or be empty unless ``overwrite``; its folder. A bad size or count is a
    ``ValueError``."""
    return generate_demo_dataset(out, seed=seed, num_train=train, num_val=val, image_size=image_size, overwrite=overwrite)
