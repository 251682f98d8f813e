"""Image files read with PIL into uint8 RGB tensors (3×H×W).

PIL rather than ``torchvision.io.decode_image``: torchvision deprecated its decoders in 0.29, and
the COCO dataset already reads its images with PIL, so a picture given to ``netadapt predict`` or
``netadapt export`` is decoded exactly as a training image is.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from netadapt.errors import DataError

# Exceptions PIL raises for a file it cannot open, verify or decode.
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def read_rgb(path: str | Path) -> torch.Tensor:
    """The image at ``path`` as a uint8 RGB tensor, or a DataError naming the file."""
    try:
        with Image.open(path) as stored:
            return F.pil_to_tensor(stored.convert("RGB"))
    except IMAGE_ERRORS as error:
        raise DataError(f"{path}: cannot read image ({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None
