"""What the jobs share: where the images come from (:class:`Data`), the base weights (:func:`base_weights`), the memory
check before a run (:func:`check_memory`) and the distributed set-up around it (:func:`distributed_run`).

The config dataclasses and :func:`~netadapt.units.format_cost` are re-exported here, so that a caller of the jobs (the
CLI) reaches what it parses and prints through this floor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from netadapt import plugins
from netadapt.config import RemapConfig, SearchConfig, SelectConfig, TrainConfig, check_input_size, load_run_config
from netadapt.data.sources import DataSplit
from netadapt.engine import distributed
from netadapt.errors import DataError, NetadaptWarning
from netadapt.genotype import Genotype
from netadapt.units import format_cost
from netadapt.weights import Weights, read_weights

__all__ = [
    "Announce", "Data", "RemapConfig", "SearchConfig", "SelectConfig", "TrainConfig", "base_weights", "check_input_size",
    "check_memory", "distributed_run", "format_cost", "num_classes", "pretrain", "resolve_splits", "started_batch",
]

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


def split_of(data: Data, split: str) -> DataSplit:
    """Split ``split`` of ``data``; a missing one is a one-line error naming those it has."""
    splits = data.splits()
    if split not in splits:
        raise DataError(f"dataset has no split {split!r}; it has: {', '.join(splits)}")
    return splits[split]


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
    from netadapt.jobs.pretrain import pretrained_demo_base

    return pretrained_demo_base(base, announce=announce, progress=progress)


@contextlib.contextmanager
def distributed_run(device: str | None) -> Iterator[distributed.Context]:
    """The run's :class:`~netadapt.engine.distributed.Context` (``torchrun``'s process group joined when there is one),
    torn down when the run ends, however it ends."""
    context = distributed.setup(device)
    try:
        yield context
    finally:
        distributed.teardown()


def check_memory(
    job: str, config: C, *, base: str, detector: str, splits: Mapping[str, DataSplit], genotype: Genotype | None = None,
    device: str | None = None, max_memory: str | int | None = None, auto_batch: bool = False, announce: Announce | None = print,
    phase: str | None = None,
) -> C:
    """``config`` when ``job``'s step (a ``SearchConfig``: the search iteration; a ``TrainConfig``: a training step of
    ``genotype``; or ``phase``, one of :data:`netadapt.jobs.preflight.PHASES`) fits the device at its batch; under ``auto_batch`` at the largest batch that fits with the lr scaled (said through
    ``announce``); else one-line :class:`~netadapt.errors.MemoryBudgetError` (:func:`netadapt.jobs.preflight.preflight_memory`,
    whose lines are cached per device and config: measured once, in the job's first seconds, or by ``netadapt estimate``)."""
    from netadapt.jobs.preflight import preflight_memory

    return preflight_memory(
        job, config, base=base, detector=detector, num_classes=num_classes(splits), genotype=genotype, device=distributed.pick_device(device),
        max_memory=max_memory, auto_batch=auto_batch, announce=announce, phase=phase,
    )


def num_classes(splits: Mapping[str, DataSplit]) -> int:
    """Classes of the training split with the background, from its annotations (the datasets are not opened); COCO's 81
    for a file of COCO's size, which parses for minutes, where the classes change the head's memory by little."""
    from netadapt.data.coco import COCO_CLASSES, read_json

    path = Path(splits["train"].annotations)
    if path.is_file() and path.stat().st_size > LARGE_ANNOTATIONS_BYTES:
        return COCO_CLASSES
    return len(read_json(path).get("categories", [])) + 1


LARGE_ANNOTATIONS_BYTES = 64 * 2**20


def started_batch(config: C, out_dir: str | Path, *, resume: bool) -> C:
    """With ``resume``, ``config`` with the batch and lr the run in ``out_dir`` started with (an ``--auto-batch`` run's,
    which a resumed run must keep), read from its ``last.pth`` (memory-mapped: nothing else of it is read)."""
    path = Path(out_dir) / "last.pth"
    if not resume or not path.is_file():
        return config
    import torch

    try:
        started = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("config") or {}
    except Exception:  # noqa: BLE001 — not a checkpoint: resuming refuses it with its own line
        return config
    return dataclasses.replace(config, batch_size=started.get("batch_size", config.batch_size), lr=started.get("lr", config.lr))
