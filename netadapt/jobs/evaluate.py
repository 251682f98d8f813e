"""The evaluation job (``netadapt eval``): COCO's 12 bbox metrics of a detector checkpoint, or of a detections file."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from netadapt.detectors.model import DetectorSpec, load_detector
from netadapt.engine.evaluate import evaluate_coco, evaluate_detector
from netadapt.errors import ConfigError, DataError
from netadapt.files import check_output_dir, check_outputs, output_folder, write_json_atomic
from netadapt.jobs.common import Data, distributed_run, split_of


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluation` measured: the metrics, the ground truth they were measured against, the files written."""

    metrics: dict[str, float]
    ground_truth: Path
    written: list[Path]


def evaluate(
    checkpoint: str | Path, *, data: Data = Data(), split: str = "val", out_dir: str | Path | None = None, batch_size: int = 16,
    workers: int = 2, device: str | None = None,
) -> tuple[dict[str, float], DetectorSpec]:
    """COCO's 12 bbox metrics of a detector checkpoint on a split; ``detections.json`` and ``metrics.json`` in ``out_dir``."""
    chosen = split_of(data, split)
    if out_dir is not None:  # before the evaluation, not after it
        check_outputs([Path(out_dir) / "detections.json", Path(out_dir) / "metrics.json"], inputs=[checkpoint])
    with distributed_run(device) as context:
        with output_folder(out_dir) if out_dir is not None else contextlib.nullcontext():  # a refused run leaves no empty folder
            model, spec = load_detector(checkpoint)
            dataset = chosen.open(train=False, input_size=spec.input_size)
            if dataset.class_names != spec.class_names:
                raise DataError(
                    f"{chosen.annotations}: classes {dataset.class_names[1:]} differ from those the detector in {checkpoint} "
                    f"was trained on ({spec.class_names[1:]})"
                )
            model.to(context.device)
            metrics = evaluate_detector(model, dataset, out_dir=out_dir, batch_size=batch_size, workers=workers, context=context)
            return metrics, spec


def evaluation(
    checkpoint: Path | None = None, *, detections: Path | None = None, annotations: Path | None = None, data: Data = Data(),
    split: str = "val", out_dir: Path | None = None, batch_size: int = 16, workers: int = 2, device: str | None = None,
) -> Evaluation:
    """``netadapt eval``: a ``checkpoint`` run on ``split`` of ``data`` (:func:`evaluate`; ``out_dir`` by default
    ``eval/`` next to it), or a COCO results file ``detections`` scored against ``annotations`` (by default the split's;
    ``metrics.json`` by default next to the file)."""
    if (checkpoint is None) == (detections is None):
        raise ConfigError("give either a CHECKPOINT to run or --detections FILE to score")
    if checkpoint is not None and annotations is not None:
        raise ConfigError(
            "--annotations is the ground truth of --detections; a CHECKPOINT is evaluated on a dataset split "
            "(--data DIR --split NAME), whose images it needs"
        )
    if batch_size < 1 or workers < 0:
        raise ConfigError(f"--batch-size must be at least 1 and --workers at least 0, got {batch_size} and {workers}")
    if checkpoint is not None:
        out_dir = out_dir or checkpoint.parent / "eval"
        metrics, _ = evaluate(checkpoint, data=data, split=split, out_dir=out_dir, batch_size=batch_size, workers=workers, device=device)
        return Evaluation(metrics, Path(split_of(data, split).annotations), [out_dir / "detections.json", out_dir / "metrics.json"])
    ground_truth = annotations if annotations is not None else Path(split_of(data, split).annotations)
    out_dir = out_dir or detections.parent
    check_outputs([out_dir / "metrics.json"], inputs=[detections, ground_truth])
    out_dir = check_output_dir(out_dir)
    metrics = evaluate_coco(ground_truth, detections)
    write_json_atomic(out_dir / "metrics.json", metrics)
    return Evaluation(metrics, ground_truth, [out_dir / "metrics.json"])
