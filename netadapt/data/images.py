"""Image files read with PIL into uint8 RGB tensors (3×H×W).

PIL rather than ``torchvision.io.decode_image``: torchvision deprecated its decoders in 0.29, and
the COCO dataset already reads its images with PIL, so a picture given to ``netadapt predict`` or
``netadapt export`` is decoded exactly as a training image is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from netadapt.errors import DataError

# Exceptions PIL raises for a file it cannot open, verify or decode.
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def to_rgb(image: Image.Image) -> Image.Image:
    """``image.convert("RGB")``, but high-depth grey images are scaled to 8 bits first: PIL's conversion clips
    them, so a 16-bit PNG (mode ``I;16``/``I``) comes out all white and a float TIFF (``F``) all black.

    Integer modes are read on the 16-bit scale (0..65535) when their values fit it, floats on 0..1 when
    theirs do; other ranges are stretched from their minimum to their maximum.
    """
    if not (image.mode.startswith("I;16") or image.mode in ("I", "F")):
        return image.convert("RGB")
    pixels = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
    if image.mode == "F" and 0.0 <= low and high <= 1.0:
        low, high = 0.0, 1.0
    elif image.mode != "F" and 0.0 <= low and high <= 65535.0:
        low, high = 0.0, 65535.0
    scaled = (pixels - low) * (255.0 / (high - low)) if high > low else np.zeros_like(pixels)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L").convert("RGB")


def read_rgb(path: str | Path) -> torch.Tensor:
    """The image at ``path`` as a uint8 RGB tensor (:func:`to_rgb`), or a DataError naming the file."""
    try:
        with Image.open(path) as stored:
            return F.pil_to_tensor(to_rgb(stored))
    except IMAGE_ERRORS as error:
        raise DataError(f"{path}: cannot read image ({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None
