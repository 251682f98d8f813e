"""The jobs behind ``netadapt train`` and ``netadapt eval``, callable from Python with the same power.

They resolve a dataset (a plugin and a folder), the architecture and where its weights come from,
then call the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from netadapt import plugins
from netadapt.data.sources import DataSplit
from netadapt.detectors.model import DetectorSpec, init_backbone, load_detector, options_from_config
from netadapt.engine import distributed
from netadapt.engine.config import SearchConfig, TrainConfig
from netadapt.engine.evaluate import evaluate_detector
from netadapt.engine.files import check_output_dir
from netadapt.engine.rundir import check_resumable, run_directory
from netadapt.engine.train import TrainResult, train_detector
from netadapt.errors import DataError
from netadapt.genotype import Genotype
from netadapt.search.loop import SearchResult
from netadapt.weights import Weights


def resolve_splits(dataset: str | None, root: str | Path | None) -> dict[str, DataSplit]:
    """The splits of dataset plugin ``dataset`` (``coco`` when a folder is given, else ``demo``)."""
    name = dataset or ("coco" if root is not None else "demo")
    return plugins.datasets().get(name).splits(root)


@dataclass
class TrainJob:
    genotype: Genotype
    base: str
    detector: str
    weights: Weights | None  # None: random initialisation
    splits: dict[str, DataSplit]
    config: TrainConfig
    out_dir: Path


def run_train_job(
    job: TrainJob,
    *,
    resume: bool = False,
    force: bool = False,
    device: str | None = None,
    progress: bool = True,
    announce: Callable[[str], None] = print,
) -> TrainResult:
    """Train ``job``; ``resume`` continues ``out_dir/last.pth`` (which must exist), ``force`` starts over one."""
    if resume:
        check_resumable(job.out_dir)
    context = distributed.setup(device)
    try:
        train_set = job.splits["train"].open(train=True, input_size=job.config.input_size)
        val_set = job.splits["val"].open(train=False, input_size=job.config.input_size)
        if val_set.class_names != train_set.class_names:
            raise DataError(
                f"{job.splits['val'].annotations}: classes {val_set.class_names[1:]} differ from those of the training split "
                f"{job.splits['train'].annotations} ({train_set.class_names[1:]})"
            )
        spec = DetectorSpec(
            detector=job.detector,
            base=job.base,
            genotype=job.genotype,
            class_names=train_set.class_names,
            input_size=job.config.input_size,
            options=options_from_config(job.detector, job.config),
        )

        def init(model) -> None:
            if job.weights is not None:
                layers = init_backbone(model, spec, job.weights)
                if context.is_main:
                    announce(f"Backbone: {layers} layers remapped from {job.weights.source}")

        return train_detector(
            spec, job.config, train_set=train_set, val_set=val_set, out_dir=job.out_dir, init=init,
            resume=resume, force=force, context=context, progress=progress,
        )
    finally:
        distributed.teardown()


def run_search_job(
    *,
    base: str,
    detector: str,
    weights: Weights | None,
    splits: dict[str, DataSplit],
    config: SearchConfig,
    out_dir: Path,
    resume: bool = False,
    force: bool = False,
    device: str | None = None,
    progress: bool = True,
) -> SearchResult | None:
    """Search into ``out_dir``, which the run holds (:func:`~netadapt.engine.rundir.run_directory`)."""
    from netadapt.cache import cache_root
    from netadapt.search.loop import run_search

    if resume:
        check_resumable(out_dir)
    context = distributed.setup(device)
    try:
        with run_directory(out_dir, resume=resume, force=force, enabled=context.is_main):
            return run_search(
                base_name=base, detector_name=detector, weights=weights, config=config, train_split=splits["train"],
                out_dir=out_dir, resume=resume, context=context, progress=progress, cache_dir=cache_root() / "cost_tables",
            )
    finally:
        distributed.teardown()


def run_eval_job(
    checkpoint: str | Path, split: DataSplit, *, out_dir: str | Path | None, batch_size: int = 16, workers: int = 2, device: str | None = None
) -> tuple[dict[str, float], DetectorSpec]:
    if out_dir is not None:
        check_output_dir(out_dir)  # before the evaluation, not after it
    context = distributed.setup(device)
    try:
        model, spec = load_detector(checkpoint)
        dataset = split.open(train=False, input_size=spec.input_size)
        if dataset.class_names != spec.class_names:
            raise DataError(
                f"{split.annotations}: classes {dataset.class_names[1:]} differ from those the detector in {checkpoint} "
                f"was trained on ({spec.class_names[1:]})"
            )
        model.to(context.device)
        metrics = evaluate_detector(model, dataset, out_dir=out_dir, batch_size=batch_size, workers=workers, context=context)
        return metrics, spec
    finally:
        distributed.teardown()
