"""The embedded demo detection dataset: textured shapes on cluttered backgrounds (DESIGN.md §2.4).

With no dataset given, netadapt searches, trains and evaluates on this dataset. It is drawn with
numpy and PIL from a seed; the same seed gives byte-identical files.

Layout written by :func:`generate_demo_dataset`::

    out_dir/
      train.json                 COCO detection annotations of the train split
      val.json                   COCO detection annotations of the val split
      images/train/000001.jpg    images, 1-based ids
      images/val/000001.jpg
      NETADAPT_DEMO              marker: only a folder holding it may be replaced (``overwrite``)

``file_name`` in a JSON file is relative to ``out_dir/images/<split>/``, so the COCO loader takes
``--images out_dir/images/train --annotations out_dir/train.json``. Category ids start at 1 (COCO
convention) and follow :data:`DEMO_CLASSES`: class ``k`` of :func:`render_object_crops` is
category id ``k + 1``. A box ``[x, y, w, h]`` (integer pixels) covers the whole object, also
where a later object hides part of it; ``area`` counts the object's visible pixels, as COCO's
``area`` is that of the visible segmentation.

Each class differs from the others in shape, colour and texture (the colour is jittered per
instance, shapes are rotated and stretched up to 1.25:1):

=========  ======  ======================
class      colour  texture
=========  ======  ======================
circle     red     stripes
square     blue    checks
triangle   green   dots
star       yellow  gradient
cross      purple  diagonal cross-hatch
ring       cyan    speckles
=========  ======  ======================

An image holds 1 to 6 objects, from about ``image_size / 20`` to ``image_size / 3`` pixels
across (log-uniform), drawn in turn so that later objects occlude earlier ones; an object is
moved elsewhere, or left out, rather than hiding more than 70% of one drawn before it. The
background is smooth colour noise with a gradient, muted distractor lines, arcs and irregular
blobs (not objects), and sensor noise over everything.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from netadapt.cache import cache_root  # re-exported: plugins import it from here
from netadapt.cost.footprint import check_memory
from netadapt.errors import DataError
from netadapt.files import output_error

__all__ = [
    "DEMO_CLASSES",
    "GENERATOR_VERSION",
    "cache_root",
    "demo_dataset_dir",
    "generate_demo_dataset",
    "render_object_crops",
]

#: Bump when the drawing changes: the cache folder name carries it, so old caches are not reused.
GENERATOR_VERSION = 1

_MAX_OBJECTS = 6
_MIN_VISIBLE = 0.3  # an earlier object must keep at least this fraction of its pixels visible
_PLACEMENT_TRIES = 20
_SUPERSAMPLE = 4  # masks are drawn this much larger, then box-filtered down for smooth edges
_JPEG_QUALITY = 90

# Random streams: each image and crop draws from its own generator, seeded by (seed, stream, index).
_TRAIN_STREAM, _VAL_STREAM, _CROP_STREAM = 0, 1, 2
DEFAULT_IMAGE_SIZE = 320  # SSDLite's input size: no resize


def _regular(corners: int, *, phase: float = -np.pi / 2) -> np.ndarray:
    angles = phase + np.arange(corners) * 2 * np.pi / corners
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star(points: int = 5, *, inner: float = 0.45) -> np.ndarray:
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return _regular(2 * points) * radii[:, None]


# A plus sign with arms 0.6 wide: one arm's outline, turned four times by 90 degrees.
_ARM = np.array([(-0.3, -0.95), (0.3, -0.95), (0.3, -0.3)])
_CROSS = np.concatenate([_ARM @ np.linalg.matrix_power([[0, 1], [-1, 0]], k) for k in range(4)])

# Textures map object-local coordinates (u, v) in pixels and a band width to a mix in [0, 1]
# between the instance's colour (0) and a darker shade of it (1).
_Texture = Callable[[np.ndarray, np.ndarray, float, np.random.Generator], np.ndarray]


def _stripes(u: np.ndarray, v: np.ndarray, band: float, rng: np.random.Generator) -> np.ndarray:
    return np.floor(u / band) % 2


def _checks(u: np.ndarray, v: np.ndarray, band: float, rng: np.random.Generator) -> np.ndarray:
    return (np.floor(u / band) + np.floor(v / band)) % 2


def _dots(u: np.ndarray, v: np.ndarray, band: float, rng: np.random.Generator) -> np.ndarray:
    du, dv = (u / (2 * band)) % 1 - 0.5, (v / (2 * band)) % 1 - 0.5
    return (du * du + dv * dv < 0.09).astype(np.float64)


def _gradient(u: np.ndarray, v: np.ndarray, band: float, rng: np.random.Generator) -> np.ndarray:
    return 0.8 * (u - u.min()) / max(float(np.ptp(u)), 1.0)  # stays lighter than the others


def _hatch(u: np.ndarray, v: np.ndarray, band: float, rng: np.random.Generator) -> np.ndarray:
    return (((u + v) / band) % 2 < 0.6) | (((u - v) / band) % 2 < 0.6)


def _speckles(u: np.ndarray, v: np.ndarray, band: float, rng: np.random.Generator) -> np.ndarray:
    return rng.random(u.shape) < 0.3


@dataclass(frozen=True)
class _ObjectKind:
    name: str
    outline: np.ndarray  # polygon (K, 2) inscribed in the unit circle
    hole: float  # the same polygon scaled by this is cut out (0: no hole)
    colour: tuple[int, int, int]
    texture: _Texture


_KINDS = (
    _ObjectKind("circle", _regular(48), 0.0, (220, 45, 40), _stripes),
    _ObjectKind("square", _regular(4, phase=np.pi / 4), 0.0, (40, 90, 225), _checks),
    _ObjectKind("triangle", _regular(3), 0.0, (40, 175, 65), _dots),
    _ObjectKind("star", _star(), 0.0, (240, 205, 35), _gradient),
    _ObjectKind("cross", _CROSS, 0.0, (155, 60, 200), _hatch),
    _ObjectKind("ring", _regular(48), 0.55, (30, 200, 210), _speckles),
)

#: Class names in label order (category id = index + 1).
DEMO_CLASSES: tuple[str, ...] = tuple(kind.name for kind in _KINDS)


def _render_object(
    rng: np.random.Generator, kind: _ObjectKind, size: float
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one object ``size`` pixels across (before stretching), rotated at random.

    Returns its RGB (h, w, 3) and alpha (h, w) in [0, 1], float, cropped to the object plus a
    one-pixel margin.
    """
    stretch = np.sqrt(rng.uniform(0.8, 1.25))
    angle = rng.uniform(0, 2 * np.pi)
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, sin], [-sin, cos]])  # row vectors: p @ rotation rotates by angle
    scale = np.array([stretch, 1 / stretch]) * size / 2
    outer = (kind.outline * scale) @ rotation
    low = outer.min(axis=0) - 1
    width, height = np.ceil(outer.max(axis=0) + 1 - low).astype(int)
    centre = -low

    mask = Image.new("L", (width * _SUPERSAMPLE, height * _SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(mask)
    draw.polygon([tuple(p) for p in (outer + centre) * _SUPERSAMPLE], fill=255)
    if kind.hole:
        draw.polygon([tuple(p) for p in (outer * kind.hole + centre) * _SUPERSAMPLE], fill=0)
    alpha = np.asarray(mask.resize((width, height), Image.Resampling.BOX), np.float32) / 255

    # Texture in the object's own frame, so that it turns and stretches with the object.
    dy, dx = np.mgrid[0:height, 0:width] + 0.5
    dx, dy = dx - centre[0], dy - centre[1]
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    band = float(np.clip(size / 7, 2.5, 12))
    mix = kind.texture(u, v, band, rng)[..., None]
    colour = np.clip(np.array(kind.colour) * rng.uniform(0.8, 1.1) + rng.normal(0, 15, 3), 0, 255)
    shade = colour * rng.uniform(0.3, 0.5)
    rgb = (colour * (1 - mix) + shade * mix).astype(np.float32)
    return rgb, alpha


def _muted_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    colour = rng.uniform(0, 255, 3)
    grey = colour.mean()
    return tuple(int(c) for c in grey + (colour - grey) * 0.35)


def _render_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth colour noise, a gradient, muted distractors (lines, arcs, blobs): float (H, W, 3)."""
    grid = rng.uniform(30, 225, (rng.integers(2, 7), rng.integers(2, 7), 3)).astype(np.uint8)
    base = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC)
    pixels = np.asarray(base, np.float32)
    across, down = np.linspace(-1, 1, width)[None, :], np.linspace(-1, 1, height)[:, None]
    ramp = across * rng.uniform(-1, 1) + down * rng.uniform(-1, 1)
    pixels = pixels + ramp[..., None] * rng.uniform(-40, 40, 3)
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = np.clip(grey + (pixels - grey) * rng.uniform(0.2, 0.6), 0, 255)

    canvas = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    crowd = height * width / 320**2  # distractor counts are set for a 320x320 image
    side = min(height, width)
    for _ in range(rng.poisson(8 * crowd)):
        ends = rng.uniform(0, 1, 4) * (width, height, width, height)
        draw.line(tuple(ends), fill=_muted_colour(rng), width=int(rng.integers(1, 4)))
    for _ in range(rng.poisson(3 * crowd)):
        x, y = rng.uniform(0, 1, 2) * (width, height)
        r = rng.uniform(0.03, 0.15) * side
        start = rng.uniform(0, 360)
        draw.arc(
            (x - r, y - r, x + r, y + r),
            start,
            start + rng.uniform(60, 270),
            fill=_muted_colour(rng),
            width=int(rng.integers(1, 4)),
        )
    for _ in range(rng.poisson(6 * crowd)):
        centre = rng.uniform(0, 1, 2) * (width, height)
        corners = int(rng.integers(5, 10))
        angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
        radii = rng.uniform(0.015, 0.1) * side * rng.uniform(0.4, 1.0, corners)
        points = centre + np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii[:, None]
        draw.polygon([tuple(p) for p in points], fill=_muted_colour(rng))
    return np.asarray(canvas, np.float32).copy()


def _paste(canvas: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    height, width = alpha.shape
    region = canvas[y : y + height, x : x + width]
    region += (rgb - region) * alpha[..., None]


def _add_noise(rng: np.random.Generator, canvas: np.ndarray) -> np.ndarray:
    noisy = canvas + rng.normal(0, rng.uniform(3, 9), canvas.shape)
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


def _render_scene(
    rng: np.random.Generator, *, image_size: int, num_classes: int, first_class: int
) -> tuple[np.ndarray, list[tuple[int, list[int], int]]]:
    """One detection image (uint8 (S, S, 3)) and its objects as (class, [x, y, w, h], area)."""
    canvas = _render_background(rng, image_size, image_size)
    owner = np.full((image_size, image_size), -1, np.int16)  # which object shows at each pixel
    classes: list[int] = []
    boxes: list[list[int]] = []
    full_areas: list[int] = []
    visible = np.zeros(0, np.int64)
    smallest, largest = np.log(max(8, image_size // 20)), np.log(image_size // 3)
    for index in range(int(rng.integers(1, _MAX_OBJECTS + 1))):
        label = first_class if index == 0 else int(rng.integers(num_classes))
        size = float(np.exp(rng.uniform(smallest, largest)))
        rgb, alpha = _render_object(rng, _KINDS[label], size)
        solid = alpha >= 0.5
        height, width = solid.shape
        for _ in range(_PLACEMENT_TRIES):
            x = int(rng.integers(0, image_size - width + 1))
            y = int(rng.integers(0, image_size - height + 1))
            under = owner[y : y + height, x : x + width][solid]
            hidden = np.bincount(under[under >= 0], minlength=len(classes))
            if np.all(visible - hidden >= _MIN_VISIBLE * np.array(full_areas)):
                break
        else:
            continue  # no place leaves every earlier object visible enough: leave this one out
        _paste(canvas, rgb, alpha, x, y)
        owner[y : y + height, x : x + width][solid] = len(classes)
        rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
        left, top = x + int(cols[0]), y + int(rows[0])
        boxes.append([left, top, x + int(cols[-1]) + 1 - left, y + int(rows[-1]) + 1 - top])
        classes.append(label)
        full_areas.append(int(solid.sum()))
        visible = np.append(visible - hidden, full_areas[-1])
    objects = list(zip(classes, boxes, (int(a) for a in visible), strict=True))
    return _add_noise(rng, canvas), objects


def _render_crop(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    canvas = _render_background(rng, size, size)
    rgb, alpha = _render_object(rng, _KINDS[label], size * rng.uniform(0.45, 0.8))
    height, width = alpha.shape
    jitter = rng.uniform(-0.08, 0.08, 2) * size
    x = int(np.clip(round((size - width) / 2 + jitter[0]), 0, max(size - width, 0)))
    y = int(np.clip(round((size - height) / 2 + jitter[1]), 0, max(size - height, 0)))
    _paste(canvas, rgb[: size - y, : size - x], alpha[: size - y, : size - x], x, y)
    return _add_noise(rng, canvas)


def _save_image(pixels: np.ndarray, path: Path) -> None:
    # 4:4:4 chroma keeps the colour textures of small objects; no metadata, so bytes are stable.
    Image.fromarray(pixels).save(path, format="JPEG", quality=_JPEG_QUALITY, subsampling=0)


def _check_classes(num_classes: int) -> None:
    if not 1 <= num_classes <= len(DEMO_CLASSES):
        raise ValueError(f"num_classes must be in 1..{len(DEMO_CLASSES)}, got {num_classes}")


def _write_dataset(
    root: Path, *, seed: int, num_train: int, num_val: int, image_size: int, num_classes: int
) -> None:
    categories = [
        {"id": label + 1, "name": name, "supercategory": "shape"}
        for label, name in enumerate(DEMO_CLASSES[:num_classes])
    ]
    info = {
        "description": "netadapt embedded demo dataset",
        "version": f"v{GENERATOR_VERSION}",
        "contributor": "netadapt",
        "seed": seed,
    }
    splits = (("train", num_train, _TRAIN_STREAM), ("val", num_val, _VAL_STREAM))
    for split, count, stream in splits:
        image_dir = root / "images" / split
        image_dir.mkdir(parents=True)
        images, annotations = [], []
        for index in range(count):
            rng = np.random.default_rng([seed, stream, index])
            pixels, objects = _render_scene(
                rng, image_size=image_size, num_classes=num_classes, first_class=index % num_classes
            )
            image_id = index + 1
            file_name = f"{image_id:06d}.jpg"
            _save_image(pixels, image_dir / file_name)
            images.append(
                {"id": image_id, "file_name": file_name, "width": image_size, "height": image_size}
            )
            for label, box, area in objects:
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": label + 1,
                        "bbox": box,
                        "area": area,
                        "iscrowd": 0,
                    }
                )
        coco = {
            "info": info,
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        (root / f"{split}.json").write_text(json.dumps(coco, separators=(",", ":")) + "\n")
    (root / DEMO_MARKER).write_text(f"netadapt demo dataset v{GENERATOR_VERSION}, seed {seed}; `--overwrite` may replace this folder\n")


DEMO_MARKER = "NETADAPT_DEMO"
_RENDER_BYTES_PER_PIXEL = 96  # peak of _render_scene's float arrays (tracemalloc, 512×512: 90 bytes a pixel)
STAGING_LOCK = ".netadapt-staging"  # held (flock) by the process writing a staging folder; the kernel drops it when that dies


def _claim_staging(staging: Path) -> int:
    """Make the staging folder and hold its lock for as long as the returned descriptor is open."""
    staging.mkdir()
    handle = os.open(staging / STAGING_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _remove_stale_staging(out_dir: Path) -> None:
    """Remove the staging folders ``<out_dir>.tmp-<pid>`` of writers that died (SIGKILL included): those holding a
    staging lock that nobody holds. A folder without one is not netadapt's and is left alone."""
    for stale in out_dir.parent.glob(f"{glob.escape(out_dir.name)}.tmp-*"):
        try:
            handle = os.open(stale / STAGING_LOCK, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live writer
        else:
            shutil.rmtree(stale, ignore_errors=True)
        finally:
            os.close(handle)


def _is_non_empty(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def _is_complete(path: Path) -> bool:
    return (path / "train.json").is_file() and (path / "val.json").is_file()


def generate_demo_dataset(
    out_dir: str | Path,
    *,
    seed: int = 0,
    num_train: int = 400,
    num_val: int = 100,
    image_size: int = DEFAULT_IMAGE_SIZE,
    num_classes: int = len(DEMO_CLASSES),
    overwrite: bool = False,
) -> Path:
    """Write the demo detection dataset to ``out_dir`` (layout in the module docstring).

    The defaults give 400 train and 100 val images of 320x320, SSDLite's input size, so no resize
    is needed, with all six classes and about 3.4 objects per image (some 1,400 training boxes,
    230 per class): enough for a small SSDLite to learn to find and tell apart the shapes in a
    few epochs on 2 CPU cores, and generated in under 10 s on one core (25 MB of JPEG).

    The dataset is written into the sibling ``<out_dir>.tmp-<pid>`` and renamed into place when
    complete, so an interrupted run never leaves a folder that looks complete; the staging folders of
    killed writers are removed (:func:`_remove_stale_staging`). A symlink ``out_dir`` is followed: the
    folder it points to is replaced, the link stays. A full disk or a read-only folder is an
    :class:`~netadapt.errors.OutputError` line. ``num_classes``
    keeps the first classes of :data:`DEMO_CLASSES`. Raises :class:`DataError` if ``out_dir``
    exists and is not empty, unless ``overwrite`` is set and the folder holds a demo dataset
    (its ``NETADAPT_DEMO`` marker: nothing else is ever deleted), and :class:`ValueError` for
    invalid options.
    """
    named = Path(out_dir)
    out_dir = Path(os.path.realpath(named)) if named.is_symlink() else named  # the link stays; its folder is replaced
    _check_classes(num_classes)
    if seed < 0 or num_train < 1 or num_val < 1 or image_size < 64:
        raise ValueError(
            "need seed >= 0, num_train >= 1, num_val >= 1 and image_size >= 64, got "
            f"seed={seed}, num_train={num_train}, num_val={num_val}, image_size={image_size}"
        )
    check_memory(image_size * image_size * _RENDER_BYTES_PER_PIXEL, what=f"--image-size {image_size}: rendering one demo image")
    if _is_non_empty(out_dir):
        if not overwrite:
            raise DataError(f"{out_dir}: exists and is not empty (--overwrite replaces a netadapt demo dataset)")
        if not (out_dir / DEMO_MARKER).is_file():
            raise DataError(
                f"{out_dir}: not replaced: it holds no netadapt demo dataset (no {DEMO_MARKER} marker); "
                "choose an empty or new folder"
            )
    staging = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    retired, handle = None, None
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(out_dir)
        shutil.rmtree(staging, ignore_errors=True)  # left by an earlier process with our pid
        handle = _claim_staging(staging)
        _write_dataset(
            staging,
            seed=seed,
            num_train=num_train,
            num_val=num_val,
            image_size=image_size,
            num_classes=num_classes,
        )
        (staging / STAGING_LOCK).unlink()
        if overwrite and _is_non_empty(out_dir):
            # Renamed aside (atomic) rather than deleted in place, which could leave a partial tree.
            retired = out_dir.rename(out_dir.with_name(f"{out_dir.name}.old-{os.getpid()}"))
        with contextlib.suppress(OSError):
            out_dir.rmdir()  # an empty folder is replaced; a missing or full one stays as it is
        try:
            staging.rename(out_dir)
        except OSError as error:  # out_dir appeared meanwhile
            raise DataError(f"{out_dir}: cannot move the new dataset there: {error}") from error
    except OSError as error:  # a full disk, a read-only folder (also NETADAPT_CACHE's)
        raise output_error(out_dir, error) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # already gone after a successful rename
        if handle is not None:
            os.close(handle)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    return named


def demo_dataset_dir(*, cache_dir: str | Path | None = None, seed: int = 0) -> Path:
    """The default demo dataset for ``seed``, generated on first use and then reused.

    It lives in ``<cache root>/demo-v<GENERATOR_VERSION>-seed<seed>``; the cache root is
    ``cache_dir`` if given, else ``$NETADAPT_CACHE``, else ``~/.cache/netadapt``. Processes may
    race: each generates into its own staging folder and the first rename wins; the others
    discard theirs and use the winner's. Staging folders left by killed runs are removed.
    """
    root = cache_root(cache_dir)
    target = root / f"demo-v{GENERATOR_VERSION}-seed{seed}"
    if _is_complete(target):
        return target
    try:
        generate_demo_dataset(target, seed=seed)
    except DataError:
        if not _is_complete(target):  # not a lost race: something else is in the way
            raise
    return target


def demo_image(*, index: int = 0, seed: int = 0, cache_dir: str | Path | None = None) -> Path:
    """Validation image ``index`` (0-based) of the default demo dataset for ``seed``, without generating the dataset:
    the dataset's own file when it is there, else that one image rendered as the dataset renders it (the same
    bytes) into ``<cache root>/demo-v<GENERATOR_VERSION>-seed<seed>-images/val/`` and reused."""
    root = cache_root(cache_dir)
    dataset = root / f"demo-v{GENERATOR_VERSION}-seed{seed}"
    name = f"{index + 1:06d}.jpg"
    if _is_complete(dataset):
        return dataset / "images" / "val" / name
    path = root / f"{dataset.name}-images" / "val" / name
    if not path.is_file():
        rng = np.random.default_rng([seed, _VAL_STREAM, index])
        pixels, _ = _render_scene(rng, image_size=DEFAULT_IMAGE_SIZE, num_classes=len(DEMO_CLASSES), first_class=index % len(DEMO_CLASSES))
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f"{path.stem}.tmp-{os.getpid()}.jpg")
        _save_image(pixels, staging)
        staging.replace(path)  # atomic: a racing process writes the same bytes
    return path


def render_object_crops(
    *, num_per_class: int, size: int = 64, seed: int = 0, num_classes: int = len(DEMO_CLASSES)
) -> tuple[np.ndarray, np.ndarray]:
    """Square crops of single demo objects, for pretraining the base network as a classifier.

    Each crop shows one object, 45-80% of ``size`` across and near the centre, on a background
    of the detection images' kind. Returns images (N, size, size, 3) uint8 and labels (N,) int64
    in 0..num_classes-1 (indices into :data:`DEMO_CLASSES`), grouped by class, with
    N = num_classes * num_per_class. Deterministic in ``seed``.
    """
    _check_classes(num_classes)
    if num_per_class < 1 or size < 16 or seed < 0:
        raise ValueError(
            f"need num_per_class >= 1, size >= 16 and seed >= 0, got "
            f"num_per_class={num_per_class}, size={size}, seed={seed}"
        )
    labels = np.repeat(np.arange(num_classes, dtype=np.int64), num_per_class)
    images = np.empty((len(labels), size, size, 3), np.uint8)
    for index, label in enumerate(labels):
        rng = np.random.default_rng([seed, _CROP_STREAM, index])
        images[index] = _render_crop(rng, int(label), size)
    return images, labels
