"""Does the input pipeline keep up? Images/s of the COCO-format loader per worker count, against the
train step's images/s at the same input size.

It writes ``--images`` JPEGs of 640×480 (COCO's typical size: smooth random backgrounds with 1–8
boxes drawn on them, so that they compress like photographs rather than noise) and a COCO
annotation file into a temporary folder, opens them as a training run does
(``DataSplit.open(train=True)``: decoding, the real training transforms — photometric distortion,
zoom out, IoU crop, flip, resize to ``--input-size`` — then :class:`SeededSamples` and the
resumable batch sampler, ``collate_detection``, the DataLoader options of
:mod:`netadapt.engine.throughput`) and measures images/s for each worker count of ``--workers``.
Then it times the training job's own train step (:class:`~netadapt.engine.train.DetectorTrainStep`) of the base
network's SSDLite detector (MobileNetV2) on one fixed synthetic batch of the same size on ``--device``, and prints the workers a step needs:
``ceil(step images/s ÷ images/s per worker)``. A search's weight step runs more than one network
(darts: every candidate; fna/sampled: one sampled path, about the base's cost), so the base step
is the demanding case.

    OMP_NUM_THREADS=1 python benchmarks/input_pipeline.py                    # CPU, 320², 200 images
    python benchmarks/input_pipeline.py --device cuda --batch-size 32 --workers 0 1 2 4 8 --json pipeline.json

On CPU the workers and the step share the cores: the numbers are per worker on this machine, and
the step's images/s is what the same cores give when nothing loads. Say how loaded the machine was:
it prints ``os.getloadavg()`` before and after.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_dataset(root: Path, *, count: int, seed: int = 0, width: int = 640, height: int = 480, classes: int = 6) -> Path:
    """``count`` JPEGs (quality 90) under ``root/images`` and ``root/train.json``; returns the json."""
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, count + 1):
        coarse = torch.rand(3, height // 32, width // 32, generator=generator)
        smooth = torch.nn.functional.interpolate(coarse[None], size=(height, width), mode="bicubic", align_corners=False)[0]
        picture = Image.fromarray((smooth.clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy())
        draw = ImageDraw.Draw(picture)
        for _ in range(rng.randint(1, 8)):
            w, h = rng.randint(30, 300), rng.randint(30, 250)
            x, y = rng.randint(0, width - w), rng.randint(0, height - h)
            draw.rectangle([x, y, x + w, y + h], fill=tuple(rng.randint(0, 255) for _ in range(3)))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": rng.randint(1, classes),
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
        name = f"{image_id:06d}.jpg"
        picture.save(root / "images" / name, quality=90)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
    categories = [{"id": i, "name": f"class{i}"} for i in range(1, classes + 1)]
    path = root / "train.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def loader_images_per_second(root: Path, annotations: Path, *, input_size: int, batch_size: int, workers: int, batches: int) -> float:
    """Images/s of the training loader with ``workers`` processes, after its first batch (start-up)."""
    from types import SimpleNamespace

    from torch.utils.data import DataLoader

    from netadapt.data.coco import collate_detection
    from netadapt.data.sources import DataSplit
    from netadapt.engine.sampling import ResumableBatchSampler, SeededSamples
    from netadapt.engine.throughput import loader_options

    dataset = DataSplit(root / "images", annotations).open(train=True, input_size=input_size)
    sampler = ResumableBatchSampler(len(dataset), batch_size=batch_size, seed=0)
    options = loader_options(SimpleNamespace(workers=workers, prefetch_factor=2), torch.device("cpu"))
    loader = DataLoader(SeededSamples(dataset, seed=0), batch_sampler=sampler, collate_fn=collate_detection, **options)
    iterator, images, started = iter(loader), 0, None
    for number in range(batches + 1):
        try:
            batch, _ = next(iterator)
        except StopIteration:
            sampler.set_position(sampler.epoch + 1)
            iterator = iter(loader)
            batch, _ = next(iterator)
        if number == 0:
            started = time.perf_counter()
        else:
            images += len(batch)
    return images / (time.perf_counter() - started)


def step_images_per_second(*, input_size: int, batch_size: int, device: torch.device, steps: int, amp: str) -> float:
    """Images/s of the base detector's train step (fixed batch; after 2 warm-up steps): the training job's own step
    (:class:`~netadapt.engine.train.DetectorTrainStep`, the train config's defaults), as ``netadapt estimate`` builds it."""
    from netadapt.config import TrainConfig
    from netadapt.jobs.preflight import StepSpec, build_step

    config = TrainConfig(input_size=input_size, batch_size=batch_size, amp=amp)
    step, _ = build_step(StepSpec("train step", config, num_classes=7), batch_size, device)
    times = []
    for number in range(steps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if number >= 2:
            times.append(time.perf_counter() - started)
    return batch_size / sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200, help="JPEGs to generate")
    parser.add_argument("--input-size", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=12, help="batches timed per worker count (after the first)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="auto", help="the train step's precision (auto: bf16 on CUDA, off on CPU)")
    parser.add_argument("--steps", type=int, default=5, help="train steps timed (median)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        annotations = write_dataset(root, count=args.images)
        print(f"wrote {args.images} JPEGs of 640×480 in {time.perf_counter() - started:.0f} s; load {load_before[0]:.1f}", flush=True)
        loader = {}
        for workers in args.workers:
            loader[workers] = loader_images_per_second(
                root, annotations, input_size=args.input_size, batch_size=args.batch_size, workers=workers, batches=args.batches
            )
            print(f"  loader, {workers} worker(s): {loader[workers]:.1f} images/s", flush=True)
    device = torch.device(args.device)
    step = step_images_per_second(input_size=args.input_size, batch_size=args.batch_size, device=device, steps=args.steps, amp=args.amp)
    load_after = os.getloadavg()
    # Per worker: the loader's rate in the main process (workers = 0) is one core's rate without IPC;
    # the best per-worker rate over the counts measured is what a worker gives here.
    per_worker = max(rate / max(1, workers) for workers, rate in loader.items())
    needed = math.ceil(step / per_worker)
    print(f"train step (base SSDLite, {args.device}, amp {args.amp}): {step:.1f} images/s at {args.input_size}², batch {args.batch_size}")
    print(f"one worker decodes and transforms {per_worker:.1f} images/s: a step on {args.device} needs {needed} worker(s)")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    if args.json:
        args.json.write_text(json.dumps({
            "settings": vars(args) | {"json": str(args.json), "image_size": [640, 480], "torch": torch.__version__},
            "loader_images_per_s": {str(k): v for k, v in loader.items()}, "step_images_per_s": step,
            "images_per_s_per_worker": per_worker, "workers_needed": needed,
            "loadavg_before": load_before, "loadavg_after": load_after,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
