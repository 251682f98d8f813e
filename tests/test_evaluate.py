"""COCO evaluation: result conversion, metrics equal to pycocotools run directly, the eval loop."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from netadapt.engine.evaluate import (
    METRIC_NAMES,
    detections_to_coco_results,
    evaluate_coco,
    merge_rank_results,
    run_evaluation,
)
from netadapt.errors import DataError, OutputError
from netadapt.files import atomic_path, write_json_atomic

# Small (area < 32²), medium and large (area > 96²) boxes over three categories and four images.
GT_BOXES = {
    1: [(1, [10, 10, 20, 20]), (2, [100, 80, 60, 50]), (5, [200, 150, 300, 200])],
    2: [(1, [50, 60, 120, 110]), (1, [300, 200, 25, 30]), (2, [400, 10, 15, 12])],
    3: [(5, [0, 0, 639, 479])],
    4: [(2, [320, 240, 40, 40]), (5, [20, 300, 28, 20])],
}


def make_ground_truth() -> dict[str, Any]:
    gt_boxes = [
        (image_id, category_id, bbox) for image_id, boxes in GT_BOXES.items() for category_id, bbox in boxes
    ]
    annotations = [
        {
            "id": index,
            "image_id": image_id,
            "category_id": category_id,
            "bbox": bbox,
            "area": bbox[2] * bbox[3],
            "iscrowd": 0,
        }
        for index, (image_id, category_id, bbox) in enumerate(gt_boxes, start=1)
    ]
    return {
        "images": [
            {"id": image_id, "file_name": f"{image_id}.jpg", "width": 640, "height": 480}
            for image_id in GT_BOXES
        ],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 5, "name": "c"}],
    }


@pytest.fixture
def gt_file(tmp_path: Path) -> Path:
    path = tmp_path / "instances_val.json"
    path.write_text(json.dumps(make_ground_truth()))
    return path


def perfect_results() -> list[dict[str, Any]]:
    return [
        {"image_id": image_id, "category_id": category_id, "bbox": list(bbox), "score": 1.0}
        for image_id, boxes in GT_BOXES.items()
        for category_id, bbox in boxes
    ]


def imperfect_results() -> list[dict[str, Any]]:
    rng = random.Random(0)
    results = []
    for image_id, boxes in GT_BOXES.items():
        for number, (category_id, (x, y, w, h)) in enumerate(boxes):
            if (image_id, number) == (2, 1):
                continue  # a missed object
            jitter = [rng.uniform(-0.15, 0.15) * side for side in (w, h, w, h)]
            results.append(
                {
                    "image_id": image_id,
                    "category_id": category_id,
                    "bbox": [x + jitter[0], y + jitter[1], w + jitter[2], h + jitter[3]],
                    "score": rng.uniform(0.3, 1.0),
                }
            )
    # Two false positives.
    results.append({"image_id": 3, "category_id": 1, "bbox": [400, 50, 60, 70], "score": 0.95})
    results.append({"image_id": 4, "category_id": 2, "bbox": [10, 10, 8, 8], "score": 0.2})
    return results


def pycocotools_stats(gt_file: Path, results: list[dict[str, Any]]) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        evaluator = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(value) for value in evaluator.stats]


def test_perfect_detections_score_one(gt_file: Path) -> None:
    metrics = evaluate_coco(gt_file, perfect_results())
    assert tuple(metrics) == METRIC_NAMES
    for name in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100", "ARs", "ARm", "ARl"):
        assert metrics[name] == 1.0, name


def test_imperfect_detections_equal_pycocotools_run_directly(gt_file: Path) -> None:
    results = imperfect_results()
    original = copy.deepcopy(results)
    expected = pycocotools_stats(gt_file, results)
    metrics = evaluate_coco(COCO(str(gt_file)), results)
    assert list(metrics.values()) == expected
    assert 0.0 < metrics["AP"] < 1.0 and metrics["AP50"] > metrics["AP75"] > 0.0
    assert results == original  # pycocotools' loadRes would have added fields to the caller's dicts


def test_paths_are_accepted_for_ground_truth_and_results(gt_file: Path, tmp_path: Path) -> None:
    results = imperfect_results()
    results_file = tmp_path / "out" / "results.json"
    write_json_atomic(results_file, results)
    assert evaluate_coco(gt_file, results_file) == evaluate_coco(gt_file, results)


def test_empty_results_give_zeros(gt_file: Path, tmp_path: Path) -> None:
    assert evaluate_coco(gt_file, []) == dict.fromkeys(METRIC_NAMES, 0.0)
    empty_file = tmp_path / "empty.json"
    empty_file.write_text("[]")
    assert evaluate_coco(gt_file, empty_file) == dict.fromkeys(METRIC_NAMES, 0.0)


def test_pycocotools_output_is_shown_only_when_verbose(
    gt_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluate_coco(gt_file, perfect_results())
    assert capsys.readouterr().out == ""
    evaluate_coco(gt_file, perfect_results(), verbose=True)
    assert "Average Precision  (AP) @[ IoU=0.50:0.95" in capsys.readouterr().out


def test_bad_results_are_data_errors(gt_file: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"result #0 names image id 77, which the ground truth lacks"):
        evaluate_coco(gt_file, [{"image_id": 77, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}])
    with pytest.raises(DataError, match=r"result #1 must have image_id, category_id, bbox and score"):
        evaluate_coco(gt_file, [perfect_results()[0], {"image_id": 1, "bbox": [0, 0, 1, 1]}])
    not_a_list = tmp_path / "results.json"
    not_a_list.write_text('{"image_id": 1}')
    with pytest.raises(DataError, match=r"results\.json: COCO results must be a JSON list"):
        evaluate_coco(gt_file, not_a_list)


def test_ground_truth_without_area_is_a_data_error(gt_file: Path) -> None:
    gt = COCO()
    gt.dataset = make_ground_truth()
    del gt.dataset["annotations"][2]["area"]
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    with pytest.raises(DataError, match=r"annotation id 3 \(image id 1\) lacks area"):
        evaluate_coco(gt, perfect_results())


def test_detections_to_coco_results_converts_boxes_and_labels() -> None:
    outputs = [
        {
            "boxes": torch.tensor([[10.0, 20.0, 50.0, 80.0], [0.5, 1.5, 2.0, 3.0]]),
            "scores": torch.tensor([0.75, 0.5]),
            "labels": torch.tensor([1, 2]),
        },
        {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    expected = [
        {"image_id": 42, "category_id": 3, "bbox": [10.0, 20.0, 40.0, 60.0], "score": 0.75},
        {"image_id": 42, "category_id": 7, "bbox": [0.5, 1.5, 1.5, 1.5], "score": 0.5},
    ]
    assert detections_to_coco_results(outputs, [torch.tensor(42), 43], {1: 3, 2: 7}) == expected
    assert detections_to_coco_results(outputs, [42, 43], lambda label: {1: 3, 2: 7}[label]) == expected
    assert isinstance(expected[0]["image_id"], int)
    with pytest.raises(ValueError, match="got 2 outputs for 1 image ids"):
        detections_to_coco_results(outputs, [42], {1: 3, 2: 7})


class FixedDetector(torch.nn.Module):
    """Detects one box over the top-left quarter of each input image, and records how it was called."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        self.calls.append((self.training, torch.is_inference_mode_enabled()))
        outputs = []
        for image in images:
            height, width = image.shape[-2:]
            outputs.append(
                {
                    "boxes": torch.tensor([[0.0, 0.0, width / 2, height / 2]]) * self.weight,
                    "scores": torch.tensor([0.9]),
                    "labels": torch.tensor([1]),
                }
            )
        return outputs


def _loader() -> list[tuple[list[torch.Tensor], list[dict[str, Any]]]]:
    image = torch.zeros(3, 32, 32)
    return [
        ([image, image], [{"image_id": 1, "orig_size": (480, 640)}, {"image_id": 2, "orig_size": (100, 50)}]),
        ([image, image], [{"image_id": 3}, {"image_id": 1, "orig_size": (480, 640)}]),  # id 1 again: a pad
    ]


def test_run_evaluation_maps_boxes_back_to_the_stored_image() -> None:
    model = FixedDetector()
    model.train()
    results = run_evaluation(model, _loader(), device="cpu", label_to_category_id={1: 5})
    assert results == [
        {"image_id": 1, "category_id": 5, "bbox": [0.0, 0.0, 320.0, 240.0], "score": pytest.approx(0.9)},
        {"image_id": 2, "category_id": 5, "bbox": [0.0, 0.0, 25.0, 50.0], "score": pytest.approx(0.9)},
        {"image_id": 3, "category_id": 5, "bbox": [0.0, 0.0, 16.0, 16.0], "score": pytest.approx(0.9)},
    ]
    assert model.calls == [(False, True), (False, True)]
    assert model.training  # put back


def test_run_evaluation_gathers_across_ranks(tmp_path: Path) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1
    )
    try:
        results = run_evaluation(FixedDetector(), _loader(), device="cpu", label_to_category_id={1: 5})
    finally:
        torch.distributed.destroy_process_group()
    assert [result["image_id"] for result in results] == [1, 2, 3]


def test_merge_rank_results_keeps_each_image_once() -> None:
    def result(image_id: int, score: float) -> dict[str, Any]:
        return {"image_id": image_id, "category_id": 1, "bbox": [0, 0, 1, 1], "score": score}

    rank0 = ([1, 3, 5], [result(1, 0.9), result(1, 0.8), result(5, 0.7)])  # image 3: no detections
    rank1 = ([2, 4, 3], [result(2, 0.6), result(4, 0.5), result(3, 0.4)])  # image 3 repeated as a pad
    rank2 = ([1], [result(1, 0.9), result(1, 0.8)])  # padded repeat of image 1
    merged = merge_rank_results([rank0, rank1, rank2])
    assert merged == [result(1, 0.9), result(1, 0.8), result(5, 0.7), result(2, 0.6), result(4, 0.5)]


def test_write_json_atomic_replaces_whole_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"AP": 0.5})
    write_json_atomic(target, {"AP": 0.25, "AP50": 0.5})
    assert json.loads(target.read_text()) == {"AP": 0.25, "AP50": 0.5}
    assert sorted(path.name for path in tmp_path.iterdir()) == [".netadapt-manifest", "metrics.json"]


def test_failed_writes_leave_the_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"AP": 0.5})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"AP": object()})
    with pytest.raises(OutputError, match="metrics.json: cannot write: RuntimeError: interrupted"):  # any failure is one line
        with atomic_path(target) as temporary:
            temporary.write_text('{"AP": ')
            raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"AP": 0.5}
    assert sorted(path.name for path in tmp_path.iterdir()) == [".netadapt-manifest", "metrics.json"]


def test_torchvision_ssdlite_on_a_coco_dataset_end_to_end(gt_file: Path, tmp_path: Path) -> None:
    from PIL import Image
    from torch.utils.data import DataLoader
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    from netadapt.data.coco import CocoDetection, collate_detection
    from netadapt.data.transforms import eval_transforms

    images_dir = tmp_path / "images"
    images_dir.mkdir()
    for image_id in GT_BOXES:
        Image.new("RGB", (640, 480), (image_id * 40, 90, 160)).save(images_dir / f"{image_id}.jpg")
    dataset = CocoDetection(images_dir, gt_file, transforms=eval_transforms(320))
    loader = DataLoader(dataset, batch_size=2, collate_fn=collate_detection)
    torch.manual_seed(0)
    model = ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=dataset.num_classes, score_thresh=0.0
    )
    results = run_evaluation(model, loader, device="cpu", label_to_category_id=dataset.label_to_category_id)
    assert results and {result["image_id"] for result in results} == set(GT_BOXES)
    assert {result["category_id"] for result in results} <= {1, 2, 5}
    for result in results:
        x, y, w, h = result["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 640 + 1e-3 and y + h <= 480 + 1e-3
    metrics = evaluate_coco(dataset.coco, results)
    assert list(metrics.values()) == pycocotools_stats(gt_file, results)
