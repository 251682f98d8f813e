"""COCO bbox evaluation: detector outputs → COCO results → the 12 standard metrics (pycocotools).

- :func:`run_evaluation` runs a torchvision detection model over a loader and gives COCO results;
  under ``torch.distributed`` every rank gets the results of all ranks, once per image.
- :func:`detections_to_coco_results` converts torchvision outputs (XYXY boxes, contiguous labels)
  to COCO results (XYWH boxes, category ids).
- :func:`evaluate_coco` runs ``COCOeval`` and names its ``stats`` (:data:`METRIC_NAMES`).

Results and metrics are saved with :func:`netadapt.files.write_json_atomic`.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchvision.models.detection.transform import resize_boxes

from netadapt.data.coco import load_coco, read_json
from netadapt.errors import DataError

# Names of COCOeval.stats, in its order: AP at IoU .50:.95, .50, .75, and for small, medium and
# large objects; AR at 1, 10 and 100 detections per image, and for small, medium and large objects.
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

LabelToCategoryId = Callable[[int], int] | Mapping[int, int]


def detections_to_coco_results(
    outputs: Sequence[Mapping[str, torch.Tensor]],
    image_ids: Sequence[int | torch.Tensor],
    label_to_category_id: LabelToCategoryId,
) -> list[dict[str, Any]]:
    """Turn torchvision detection outputs into COCO results, one dict per detection.

    ``outputs[i]`` holds ``boxes`` (N×4, XYXY pixels of the image ``image_ids[i]``), ``scores`` and
    ``labels`` (contiguous); ``label_to_category_id`` maps a label to its COCO category id (a
    mapping, or a function such as :meth:`CocoDetection.label_to_category_id`). Each result is
    ``{"image_id", "category_id", "bbox": [x, y, width, height], "score"}``.
    """
    if len(outputs) != len(image_ids):
        raise ValueError(f"got {len(outputs)} outputs for {len(image_ids)} image ids")
    to_category: Callable[[int], int]
    if isinstance(label_to_category_id, Mapping):
        to_category = label_to_category_id.__getitem__
    else:
        to_category = label_to_category_id
    category_ids: dict[int, int] = {}
    results = []
    for output, image_id in zip(outputs, image_ids):
        boxes = output["boxes"].detach().to("cpu", torch.float64)
        xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
        scores = output["scores"].detach().cpu().tolist()
        labels = output["labels"].detach().cpu().tolist()
        for bbox, score, label in zip(xywh, scores, labels):
            if label not in category_ids:
                category_ids[label] = to_category(label)
            results.append(
                {
                    "image_id": int(image_id),
                    "category_id": category_ids[label],
                    "bbox": bbox,
                    "score": float(score),
                }
            )
    return results


def evaluate_coco(
    coco_gt: COCO | str | os.PathLike[str],
    results: list[dict[str, Any]] | str | os.PathLike[str],
    *,
    verbose: bool = False,
) -> dict[str, float]:
    """COCO bbox metrics of ``results`` against ``coco_gt``, named by :data:`METRIC_NAMES`.

    Either argument may be a path to a JSON file. The values are pycocotools' ``COCOeval.stats``
    unchanged (-1 where a metric has no ground truth). An empty result list gives all zeros
    (pycocotools cannot load one). pycocotools' printed summary is shown only with ``verbose``.
    """
    gt = coco_gt if isinstance(coco_gt, COCO) else load_coco(coco_gt)
    check_evaluable(gt, str(coco_gt) if not isinstance(coco_gt, COCO) else "the ground truth")
    source = "results"
    if not isinstance(results, list):
        source = str(results)
        results = read_json(results)
        if not isinstance(results, list):
            raise DataError(f"{source}: COCO results must be a JSON list, got {type(results).__name__}")
    if not results:
        return dict.fromkeys(METRIC_NAMES, 0.0)
    _check_ground_truth(gt)
    _check_results(results, gt, source)
    with _quiet(verbose):
        # loadRes adds fields to the dicts it is given: hand it copies.
        detections = gt.loadRes([dict(result) for result in results])
        evaluator = COCOeval(gt, detections, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(METRIC_NAMES, evaluator.stats)}


def run_evaluation(
    model: torch.nn.Module,
    data_loader: Iterable[tuple[Sequence[torch.Tensor], Sequence[Mapping[str, Any]]]],
    *,
    device: torch.device | str,
    label_to_category_id: LabelToCategoryId,
) -> list[dict[str, Any]]:
    """Run a torchvision detection model over ``data_loader``; return COCO results.

    The loader yields ``(images, targets)`` lists (:func:`netadapt.data.coco.collate_detection`);
    a target needs ``image_id`` and, when the image was resized, ``orig_size`` (height, width):
    boxes are mapped from the model's input back to the stored image. The model runs in eval mode
    under ``torch.inference_mode`` and is put back in its former mode afterwards.

    With ``torch.distributed`` initialised every rank returns the results of all ranks, each image
    counted once (``DistributedSampler`` pads the last batches by repeating images).
    """
    was_training = model.training
    model.eval()
    evaluated: dict[int, None] = {}  # image ids in order, each once
    results: list[dict[str, Any]] = []
    try:
        with torch.inference_mode():
            for images, targets in data_loader:
                inputs = [image.as_subclass(torch.Tensor).to(device) for image in images]
                for image, target, output in zip(inputs, targets, model(inputs)):
                    image_id = int(target["image_id"])
                    if image_id in evaluated:  # a repeat, as DistributedSampler pads with
                        continue
                    evaluated[image_id] = None
                    if "orig_size" in target:
                        # The model saw the transformed image; results refer to the stored one.
                        output["boxes"] = resize_boxes(
                            output["boxes"], list(image.shape[-2:]), list(target["orig_size"])
                        )
                    results.extend(detections_to_coco_results([output], [image_id], label_to_category_id))
    finally:
        model.train(was_training)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        gathered: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, (list(evaluated), results))
        return merge_rank_results(gathered)
    return results


def merge_rank_results(
    per_rank: Sequence[tuple[Sequence[int], Sequence[dict[str, Any]]]],
) -> list[dict[str, Any]]:
    """Join ``(evaluated image ids, results)`` of several ranks, each image once.

    An image evaluated on several ranks (a padded repeat) keeps the results of the first rank that
    evaluated it.
    """
    owner: dict[int, int] = {}
    for rank, (image_ids, _) in enumerate(per_rank):
        for image_id in image_ids:
            owner.setdefault(image_id, rank)
    return [
        result
        for rank, (_, results) in enumerate(per_rank)
        for result in results
        if owner[result["image_id"]] == rank
    ]


def check_evaluable(gt: COCO, source: str) -> None:
    """A split COCO's AP means something on: images, and a box that is not a crowd region. Without images
    pycocotools reports 0.0, without boxes -1.0 (which reads as "mAP -100.0"): both are refused, naming ``source``."""
    if not gt.imgs:
        raise DataError(f"{source}: has no images: there is nothing to evaluate (AP would read 0.0)")
    if not any(not annotation.get("iscrowd", 0) for annotation in gt.dataset.get("annotations", [])):
        raise DataError(f"{source}: has no annotated boxes (other than crowd regions): AP is undefined there (pycocotools gives -1)")


def _check_ground_truth(gt: COCO) -> None:
    """COCOeval reads ``iscrowd`` and ``area`` of every ground-truth box; fail clearly without them."""
    for annotation in gt.dataset.get("annotations", []):
        missing = [key for key in ("iscrowd", "area", "bbox") if key not in annotation]
        if missing:
            raise DataError(
                f"ground truth annotation id {annotation.get('id')!r} "
                f"(image id {annotation.get('image_id')!r}) lacks {', '.join(missing)}; "
                "COCO evaluation needs them"
            )


def _check_results(results: list[Any], gt: COCO, source: str) -> None:
    """Fail in one line on a result pycocotools would choke on (its own check is a bare assert)."""
    for index, result in enumerate(results):
        if not isinstance(result, dict) or not {"image_id", "category_id", "bbox", "score"} <= result.keys():
            raise DataError(
                f"{source}: result #{index} must have image_id, category_id, bbox and score: {result!r}"
            )
        bbox = result["bbox"]
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4):
            raise DataError(
                f"{source}: result #{index} (image id {result['image_id']}): "
                f"bbox must be [x, y, width, height], got {bbox!r}"
            )
        if not _is_integer(result["image_id"]):
            raise DataError(f"{source}: result #{index}: image_id must be an integer, got {result['image_id']!r}")
        if not _is_integer(result["category_id"]):
            raise DataError(f"{source}: result #{index}: category_id must be an integer, got {result['category_id']!r}")
        # A NaN box or score makes every comparison false: pycocotools then scores such detections AP 1.0.
        if not all(_is_finite_number(value) for value in bbox):
            raise DataError(
                f"{source}: result #{index} (image id {result['image_id']}): bbox must be four finite numbers, got {bbox!r}"
            )
        if not _is_finite_number(result["score"]):
            raise DataError(
                f"{source}: result #{index} (image id {result['image_id']}): score must be a finite number, got {result['score']!r}"
            )
        if result["image_id"] not in gt.imgs:
            raise DataError(
                f"{source}: result #{index} names image id {result['image_id']!r}, "
                "which the ground truth lacks"
            )
        if result["category_id"] not in gt.cats:  # COCOeval would silently ignore the detection
            raise DataError(
                f"{source}: result #{index} names category id {result['category_id']!r}, which the ground truth lacks "
                f"(it has {', '.join(map(str, sorted(gt.cats)))})"
            )


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer of hundreds of digits
        return False


@contextlib.contextmanager
def _quiet(verbose: bool) -> Iterator[None]:
    """Swallow what pycocotools prints, unless ``verbose``."""
    if verbose:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def evaluate_detector(
    model: torch.nn.Module,
    dataset: Any,
    *,
    out_dir: str | os.PathLike[str] | None,
    batch_size: int = 16,
    workers: int = 0,
    context: Any = None,
) -> dict[str, float]:
    """COCO bbox metrics of ``model`` on ``dataset`` (a :class:`~netadapt.data.coco.CocoDetection`).

    Under ``torch.distributed`` every rank evaluates its shard and rank 0 gets all results. With
    ``out_dir``, rank 0 writes ``detections.json`` (COCO results format) and ``metrics.json``.
    """
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    from netadapt.data.coco import collate_detection
    from netadapt.engine.distributed import Context
    from netadapt.files import write_json_atomic

    check_evaluable(dataset.coco, str(getattr(dataset, "annotation_file", "the ground truth")))  # before the model runs
    context = context or Context()
    sampler = DistributedSampler(dataset, shuffle=False) if context.distributed else None
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate_detection, num_workers=workers)
    results = run_evaluation(model, loader, device=context.device, label_to_category_id=dataset.label_to_category_id)
    metrics = evaluate_coco(dataset.coco, results)
    if out_dir is not None and context.is_main:
        write_json_atomic(Path(out_dir) / "detections.json", results)
        write_json_atomic(Path(out_dir) / "metrics.json", metrics)
    return metrics
