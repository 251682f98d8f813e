"""The jobs behind the commands — train, search, evaluate, adapt, pretrain — callable from Python with their power.

A job sits above the engine (:mod:`netadapt.engine`) and the search (:mod:`netadapt.search`) and owns the
defaults that a command applies, so that a Python user gets the same run as the command line::

    from netadapt import jobs
    result = jobs.search(data=jobs.Data(), config=None)                    # the README's main command
    report = jobs.adapt(data=jobs.Data(root="coco/"), weights="imagenet")  # the whole method on COCO

The defaults:

- **data** (:class:`Data`): a dataset plugin and its folder; a folder alone is the ``coco`` plugin's layout,
  neither is the embedded demo (generated once, cached);
- **config**: a section of the given config file, else of the demo's packaged one on the demo, else the
  paper's defaults, with ``overrides`` (``section.key=value``) on top (:func:`Data.config`);
- **base weights** (:func:`base_weights`): a file, ``imagenet`` or ``none``; when not given, the demo's
  classifier-pretrained base on the demo (pretrained once, cached: :mod:`netadapt.bases.pretrain`), else
  random initialisation with a warning.

Every job checks what it can before it trains (a search's infeasible target before the demo base's
pretraining), sets up ``torchrun``'s process group when there is one and tears it down after.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from netadapt import plugins
from netadapt.cache import cache_root
from netadapt.data.sources import DataSplit
from netadapt.detectors.model import DetectorSpec, check_training_memory, init_backbone, load_detector, options_from_config
from netadapt.engine import distributed
from netadapt.engine.config import SearchConfig, TrainConfig, load_run_config
from netadapt.engine.evaluate import evaluate_detector
from netadapt.engine.files import check_outputs, output_folder
from netadapt.engine.rundir import check_resumable, run_directory
from netadapt.engine.train import TrainResult, train_detector
from netadapt.errors import ConfigError, DataError, NetadaptWarning
from netadapt.genotype import Genotype
from netadapt.weights import Weights, read_weights

C = TypeVar("C")
Announce = Callable[[str], None]


@dataclass(frozen=True)
class Data:
    """Where a job's images come from: dataset plugin ``dataset`` and its folder ``root``. A folder alone is
    the ``coco`` plugin's layout (``annotations/instances_{train,val}2017.json``); neither is the embedded demo."""

    root: str | Path | None = None
    dataset: str | None = None

    @property
    def name(self) -> str:
        return self.dataset or ("coco" if self.root is not None else "demo")

    @property
    def is_demo(self) -> bool:
        return self.name == "demo"

    def splits(self) -> dict[str, DataSplit]:
        return plugins.datasets().get(self.name).splits(self.root)

    def config(
        self, kind: type[C], section: str, *, config_file: Path | None = None, overrides: Sequence[str] = (), flags: Mapping[str, Any] | None = None
    ) -> C:
        """Section ``section`` of ``config_file`` (the demo's packaged config on the demo, else the paper's defaults),
        ``overrides`` (``search.epochs=3``) and then ``flags`` (values; ``None`` ones are not given) on top."""
        return load_run_config(kind, section, config_file=config_file, overrides=overrides, flags=flags, demo=self.is_demo)


def resolve_splits(dataset: str | None, root: str | Path | None) -> dict[str, DataSplit]:
    """The splits of dataset plugin ``dataset`` (``coco`` when a folder is given, else ``demo``)."""
    return Data(root, dataset).splits()


def base_weights(weights: str | Weights | None, *, base: str, data: Data, progress: bool = True, announce: Announce = print) -> Weights | None:
    """The base network's weights for a job: ``weights`` read (a file, ``imagenet``; ``none`` is random
    initialisation); when not given, the demo's classifier-pretrained base on the demo (its pretraining
    draws a bar unless ``progress`` is false), else random initialisation, with a warning."""
    if isinstance(weights, Weights):
        return weights
    if weights == "none":
        return None
    if weights is not None:
        return read_weights(weights, base_name=base)
    if data.is_demo:
        return read_weights(pretrain(base, progress=progress, announce=announce), base_name=base)
    warnings.warn(
        f"no --weights given: the {base} backbone starts from RANDOM initialisation (pass --weights FILE or 'imagenet').", NetadaptWarning, stacklevel=2
    )
    return None


def pretrain(base: str = "mobilenetv2", *, progress: bool = True, announce: Announce | None = print) -> Path:
    """The demo's classifier-pretrained ``base`` (pretrained once on demo object crops, cached); its path."""
    from netadapt.bases.pretrain import pretrained_demo_base

    return pretrained_demo_base(base, announce=announce, progress=progress)


def train(
    genotype: Genotype | None = None,
    *,
    base: str = "mobilenetv2",
    detector: str = "ssdlite",
    weights: str | Weights | None = None,
    checkpoint: str | Path | None = None,
    data: Data = Data(),
    config: TrainConfig | None = None,
    out_dir: str | Path = "runs/train",
    resume: bool = False,
    force: bool = False,
    device: str | None = None,
    progress: bool = True,
    announce: Announce = print,
) -> TrainResult:
    """Train a detector on ``genotype`` (default: the base network's) and evaluate it on the val split.

    The backbone starts from ``weights`` (:func:`base_weights`), or from a detector ``checkpoint`` (its
    genotype and weights: continue training another run's detector). ``resume`` continues ``out_dir/last.pth``,
    which must exist; ``force`` starts over a resumable run there.
    """
    if checkpoint is not None and (genotype is not None or weights is not None):
        raise ConfigError("--checkpoint carries its genotype and weights: give no GENOTYPE and no --weights with it")
    config = config or data.config(TrainConfig, "train")
    if checkpoint is not None:
        source = read_weights(checkpoint, base_name=base)
        genotype = source.genotype or plugins.bases().get(base).base_genotype()
    else:
        base = genotype.base if genotype is not None else base
        genotype = genotype or plugins.bases().get(base).base_genotype()
        check_training_memory(genotype, config, section="train")  # before the demo base's pretraining
        source = base_weights(weights, base=base, data=data, progress=progress, announce=announce)
    splits = data.splits()
    out_dir = Path(out_dir)
    if resume:
        check_resumable(out_dir)
    context = distributed.setup(device)
    try:
        train_set = splits["train"].open(train=True, input_size=config.input_size)
        val_set = splits["val"].open(train=False, input_size=config.input_size)
        if val_set.class_names != train_set.class_names:
            raise DataError(
                f"{splits['val'].annotations}: classes {val_set.class_names[1:]} differ from those of the training split "
                f"{splits['train'].annotations} ({train_set.class_names[1:]})"
            )
        spec = DetectorSpec(detector, base, genotype, train_set.class_names, config.input_size, options_from_config(detector, config))

        def init(model) -> None:
            if source is not None:
                layers = init_backbone(model, spec, source)
                if context.is_main:
                    announce(f"Backbone: {layers} layers remapped from {source.source}")

        return train_detector(
            spec, config, train_set=train_set, val_set=val_set, out_dir=out_dir, init=init,
            resume=resume, force=force, context=context, progress=progress,
        )
    finally:
        distributed.teardown()


def search(
    *,
    base: str = "mobilenetv2",
    detector: str = "ssdlite",
    weights: str | Weights | None = None,
    data: Data = Data(),
    config: SearchConfig | None = None,
    out_dir: str | Path = "runs/search",
    resume: bool = False,
    force: bool = False,
    device: str | None = None,
    progress: bool = True,
    announce: Announce = print,
):
    """Search an architecture (:func:`netadapt.search.loop.run_search`) into ``out_dir``, which the run holds
    (:func:`~netadapt.engine.rundir.run_directory`); ``None`` when interrupted before the end. An infeasible
    ``search.target``, or a ``search.base_prior`` the base's ops cannot take, is refused before anything trains,
    the demo base's pretraining included."""
    from netadapt.search.loop import preflight_search, run_search

    config = config or data.config(SearchConfig, "search")
    splits = data.splits()
    preflight_search(base, config, cache_dir=cache_root() / "cost_tables")
    source = base_weights(weights, base=base, data=data, progress=progress, announce=announce)
    out_dir = Path(out_dir)
    if resume:
        check_resumable(out_dir)
    context = distributed.setup(device)
    try:
        with run_directory(out_dir, resume=resume, force=force, enabled=context.is_main):
            return run_search(
                base_name=base, detector_name=detector, weights=source, config=config, train_split=splits["train"],
                out_dir=out_dir, resume=resume, context=context, progress=progress, cache_dir=cache_root() / "cost_tables",
            )
    finally:
        distributed.teardown()


def evaluate(
    checkpoint: str | Path, *, data: Data = Data(), split: str = "val", out_dir: str | Path | None = None, batch_size: int = 16,
    workers: int = 2, device: str | None = None,
) -> tuple[dict[str, float], DetectorSpec]:
    """COCO's 12 bbox metrics of a detector checkpoint on a split; ``detections.json`` and ``metrics.json`` in ``out_dir``."""
    splits = data.splits()
    if split not in splits:
        raise DataError(f"dataset has no split {split!r}; it has: {', '.join(splits)}")
    if out_dir is not None:  # before the evaluation, not after it
        check_outputs([Path(out_dir) / "detections.json", Path(out_dir) / "metrics.json"], inputs=[checkpoint])
    context = distributed.setup(device)
    try:
        with output_folder(out_dir) if out_dir is not None else contextlib.nullcontext():  # a refused run leaves no empty folder
            model, spec = load_detector(checkpoint)
            dataset = splits[split].open(train=False, input_size=spec.input_size)
            if dataset.class_names != spec.class_names:
                raise DataError(
                    f"{splits[split].annotations}: classes {dataset.class_names[1:]} differ from those the detector in {checkpoint} "
                    f"was trained on ({spec.class_names[1:]})"
                )
            model.to(context.device)
            metrics = evaluate_detector(model, dataset, out_dir=out_dir, batch_size=batch_size, workers=workers, context=context)
            return metrics, spec
    finally:
        distributed.teardown()


def adapt(
    *,
    base: str = "mobilenetv2",
    detector: str = "ssdlite",
    weights: str | Weights | None = None,
    data: Data = Data(),
    search_config: SearchConfig | None = None,
    train_config: TrainConfig | None = None,
    out_dir: str | Path = "runs/adapt",
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    announce: Announce = print,
):
    """The whole method (:func:`netadapt.adapt.run_adapt`): search, derive, remap, train, and the base for comparison;
    ``report.md`` / ``report.json`` in ``out_dir``. The demo base's pretraining, when it runs, is timed apart."""
    from netadapt.adapt import run_adapt
    from netadapt.bases.pretrain import pretrained_demo_path
    from netadapt.search.loop import preflight_search

    search_config = search_config or data.config(SearchConfig, "search")
    train_config = train_config or data.config(TrainConfig, "train")
    splits = data.splits()
    preflight_search(base, search_config, cache_dir=cache_root() / "cost_tables")  # before any training
    started = time.perf_counter()
    pretraining = data.is_demo and weights is None and not pretrained_demo_path(base).is_file()
    source = base_weights(weights, base=base, data=data, progress=progress, announce=announce)
    extra = {"base pretraining on demo crops": (time.perf_counter() - started) / 3600} if pretraining else {}
    return run_adapt(
        base=base, detector=detector, weights=source, splits=splits, dataset_name=data.name, search_config=search_config,
        train_config=train_config, out_dir=out_dir, resume=resume, device=device, progress=progress,
        cache_dir=cache_root() / "cost_tables", announce=announce, extra_hours=extra,
    )
