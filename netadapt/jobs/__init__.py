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
  classifier-pretrained base on the demo (pretrained once, cached: :mod:`netadapt.jobs.pretrain`), else
  random initialisation with a warning.

Every job checks what it can before it trains (a search's infeasible target, then whether its step's projected
peak memory fits the device, both before the demo base's pretraining: :func:`check_memory`), sets up ``torchrun``'s
process group when there is one and tears it down after.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from netadapt import plugins
from netadapt.cache import cache_root
from netadapt.config import RemapConfig, SearchConfig, SelectConfig, TrainConfig, load_run_config
from netadapt.data.sources import DataSplit
from netadapt.detectors.model import DetectorSpec, check_training_memory, init_backbone, load_detector, options_from_config
from netadapt.engine import distributed
from netadapt.engine.evaluate import evaluate_detector
from netadapt.engine.rundir import check_resumable, run_directory
from netadapt.engine.train import TrainResult, train_detector
from netadapt.errors import ConfigError, DataError, NetadaptWarning, OutputError, RunError
from netadapt.files import check_outputs, output_folder, remove_outputs, save_torch_atomic
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
    from netadapt.jobs.pretrain import pretrained_demo_base

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
    remap: RemapConfig | None = None,
    out_dir: str | Path = "runs/train",
    resume: bool = False,
    force: bool = False,
    device: str | None = None,
    progress: bool = True,
    announce: Announce = print,
    max_memory: str | int | None = None,
    auto_batch: bool = False,
) -> TrainResult:
    """Train a detector on ``genotype`` (default: the base network's) and evaluate it on the val split.

    The backbone starts from ``weights`` (:func:`base_weights`) remapped as ``remap`` says (``remap.mode``), or from
    a detector ``checkpoint`` (its genotype and weights: continue training another run's detector). ``resume``
    continues ``out_dir/last.pth``, which must exist; ``force`` starts over a resumable run there. The training step's
    projected peak memory is checked first (:func:`check_memory`: ``max_memory``, ``auto_batch``).
    """
    remap = remap or data.config(RemapConfig, "remap")
    if checkpoint is not None and (genotype is not None or weights is not None):
        raise ConfigError("--checkpoint carries its genotype and weights: give no GENOTYPE and no --weights with it")
    config = config or data.config(TrainConfig, "train")
    if checkpoint is not None:
        source = read_weights(checkpoint, base_name=base)
        genotype = source.genotype or plugins.bases().get(base).base_genotype()
    else:
        base = genotype.base if genotype is not None else base
        genotype = genotype or plugins.bases().get(base).base_genotype()
        check_training_memory(genotype, config, section="train")  # a lower bound, before anything is measured or pretrained
    splits = data.splits()
    config = check_memory(
        "train", started_batch(config, out_dir, resume=resume and auto_batch), base=base, detector=detector, splits=splits, genotype=genotype, device=device, max_memory=max_memory,
        auto_batch=auto_batch, announce=announce,
    )
    if checkpoint is None:
        source = base_weights(weights, base=base, data=data, progress=progress, announce=announce)
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
                layers = init_backbone(model, spec, source, mode=remap.mode)
                if context.is_main:
                    announce(f"Backbone: {layers} layers remapped from {source.source}" + (f" ({remap.mode})" if remap.mode != "fna" else ""))

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
    max_memory: str | int | None = None,
    auto_batch: bool = False,
):
    """Search an architecture (:func:`netadapt.search.loop.run_search`) into ``out_dir``, which the run holds
    (:func:`~netadapt.engine.rundir.run_directory`); ``None`` when interrupted before the end. An infeasible
    ``search.target``, a ``search.base_prior`` the base's ops cannot take, or a step whose projected peak memory does
    not fit (:func:`check_memory`) is refused before anything trains, the demo base's pretraining included."""
    from netadapt.search.loop import preflight_search, run_search

    config = config or data.config(SearchConfig, "search")
    splits = data.splits()
    preflight_search(base, config, cache_dir=cache_root() / "cost_tables")
    config = check_memory(
        "search", started_batch(config, out_dir, resume=resume and auto_batch), base=base, detector=detector, splits=splits, device=device, max_memory=max_memory, auto_batch=auto_batch,
        announce=announce,
    )
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
    select_stage: bool = True,
    select_config: SelectConfig | None = None,
    remap: RemapConfig | None = None,
    parallel: int = 1,
    max_memory: str | int | None = None,
    auto_batch: bool = False,
):
    """The whole method (:func:`netadapt.jobs.adapt.run_adapt`): search, derive, remap, train, and the base for comparison;
    ``report.md`` / ``report.json`` in ``out_dir``. The demo base's pretraining, when it runs, is timed apart. The search
    step and the training step (on the base network: the derived one is not known yet) are checked for memory first.
    Under a target (``search.target`` or ``select.target``) and with ``select_stage``, the selection stage
    (:func:`select`) runs between search and training in ``out_dir/select`` and its winner is trained."""
    from netadapt.jobs.adapt import run_adapt
    from netadapt.jobs.pretrain import pretrained_demo_path
    from netadapt.search.loop import preflight_search

    search_config = search_config or data.config(SearchConfig, "search")
    train_config = train_config or data.config(TrainConfig, "train")
    splits = data.splits()
    preflight_search(base, search_config, cache_dir=cache_root() / "cost_tables")  # before any training
    memory = {"base": base, "detector": detector, "splits": splits, "device": device, "max_memory": max_memory, "auto_batch": auto_batch,
              "announce": announce}
    search_config = check_memory("search", search_config, **memory)
    train_config = check_memory("train", train_config, **memory)
    started = time.perf_counter()
    pretraining = data.is_demo and weights is None and not pretrained_demo_path(base).is_file()
    source = base_weights(weights, base=base, data=data, progress=progress, announce=announce)
    extra = {"base pretraining on demo crops": (time.perf_counter() - started) / 3600} if pretraining else {}
    select_config = select_config or data.config(SelectConfig, "select")
    remap = remap or data.config(RemapConfig, "remap")
    choose = None
    if select_stage and (search_config.target is not None or select_config.target is not None):
        if isinstance(weights, Weights):
            raise ConfigError("adapt: the selection stage trains candidates in worker processes: give the weights as a file, 'imagenet' or 'none'")
        weights_file = weights if weights is not None else (pretrain(base, progress=False, announce=None) if data.is_demo else "none")
        choose = functools.partial(
            _selected_network, base=base, detector=detector, weights=weights_file, data=data, config=select_config, train_config=train_config, remap=remap,
            out_dir=Path(out_dir) / "select", parallel=parallel, resume=resume, force=not resume, max_memory=max_memory, announce=announce,
        )

    return run_adapt(
        base=base, detector=detector, weights=source, splits=splits, dataset_name=data.name, search_config=search_config,
        train_config=train_config, out_dir=out_dir, resume=resume, device=device, progress=progress,
        cache_dir=cache_root() / "cost_tables", announce=announce, extra_hours=extra, choose=choose, remap_mode=remap.mode,
    )


def select(
    search_dir: str | Path | None = None,
    *,
    target: str | float | None = None,
    base: str = "mobilenetv2",
    detector: str = "ssdlite",
    weights: str | Path | None = None,
    data: Data = Data(),
    config: SelectConfig | None = None,
    train_config: TrainConfig | None = None,
    search_config: SearchConfig | None = None,
    remap: RemapConfig | None = None,
    out_dir: str | Path = "runs/select",
    parallel: int = 1,
    resume: bool = False,
    force: bool = False,
    max_memory: str | int | None = None,
    announce: Announce = print,
):
    """The selection stage (:mod:`netadapt.select.run`): a pool under the target — the base if it fits, the base
    pruned by depth and by width, the search's network (``search_dir``), solutions of the constrained choice on the
    remap-aware score — narrowed by successive halving of short trainings on held-out training images; writes
    ``selection.json`` and the winner's ``genotype.yaml`` into ``out_dir``. ``target`` (or ``select.target``): the
    budget, by default the search's. Without a search the space and table are those a search with ``search_config``
    would have. ``weights`` must be a file (the rungs train in worker processes): by default the demo's base."""
    from netadapt.select.run import run_select

    config = config or data.config(SelectConfig, "select")
    train_config = train_config or data.config(TrainConfig, "train")
    remap = remap or data.config(RemapConfig, "remap")
    if target is not None:
        config = dataclasses.replace(config, target=target)
        config.validate("--target")
    out_dir = Path(out_dir)
    space = selection_space(search_dir, base=base, config=config, search_config=search_config or data.config(SearchConfig, "search"))
    splits = data.splits()
    # The rungs' training step (on the base network: no candidate under a target is dearer) checked for memory, each of
    # the ``parallel`` trainings side by side getting its share of the budget.
    from netadapt.engine.distributed import pick_device
    from netadapt.engine.memory import memory_budget

    share = memory_budget(pick_device(None), max_memory).bytes // max(1, parallel)
    check_memory("select", train_config, base=space.base_name, detector=detector, splits=splits, max_memory=share, announce=announce)
    if weights is None:
        if not data.is_demo:
            raise ConfigError("select: pass --weights FILE, 'imagenet' or 'none' (the base weights the candidates are remapped from)")
        weights = pretrain(space.base_name, progress=False, announce=announce)
    started_before = (out_dir / "rungs").exists() or (out_dir / "selection.json").exists()
    if started_before and not resume and not force:
        raise RunError(f"{out_dir} holds a selection: continue it with --resume, start over with --force, or choose another --out")
    with run_directory(out_dir, resume=True):
        if force and not resume:
            for stale in ("rungs", "pool", "selection.json", "genotype.yaml", "scores.json"):
                left = remove_outputs(out_dir / stale)  # only what netadapt wrote there (netadapt/files.py)
                if left:
                    raise OutputError(f"{left[0]}: netadapt did not write it; --force does not delete it: move it and run again")
        weights = _weights_file(weights, base=space.base_name, out_dir=out_dir)
        return run_select(
            space=space, detector=detector, weights_path=weights, weights=read_weights(weights, base_name=space.base_name),
            train_annotations=splits["train"].annotations,
            train_images=splits["train"].images, config=config, train_config=train_config, remap=remap, out_dir=out_dir,
            parallel=parallel, resume=resume, cache_dir=cache_root() / "remap_scores", announce=announce,
        )


def _selected_network(search_dir: Path, **options) -> tuple[Genotype, dict]:
    """``adapt``'s selection stage: :func:`select` on the finished search; the winner and ``selection.json``."""
    result = select(search_dir, **options)
    return result.genotype, json.loads((result.out_dir / "selection.json").read_text())


def _weights_file(weights: str | Path, *, base: str, out_dir: Path) -> str:
    """What the selection's worker processes read: a file as it is (absolute), ``imagenet`` as it is, ``none`` one random
    base (seed 0) written to ``out_dir/base-random.pth``, so that the score and every rung start from the same one."""
    import torch

    if str(weights) == "imagenet":
        return "imagenet"
    if str(weights) != "none":
        return str(Path(weights).resolve())
    path = out_dir / "base-random.pth"
    if not path.is_file():
        with torch.random.fork_rng():  # the caller's random state is left as it was
            torch.manual_seed(0)
            base_network = plugins.bases().get(base)
            save_torch_atomic(base_network.build(base_network.base_genotype()).state_dict(), path)
    return str(path.resolve())


def selection_space(search_dir: str | Path | None, *, base: str, config: SelectConfig, search_config: SearchConfig):
    """The :class:`~netadapt.select.run.Space` of a finished search (its α, table, derived ops and target), or the one a
    search with ``search_config`` would have."""
    import torch

    from netadapt.search.budget import base_ops, check_target
    from netadapt.search.derive import choose_ops
    from netadapt.search.front import load_search
    from netadapt.search.loop import search_budget
    from netadapt.search.space import default_space_name, load_search_space
    from netadapt.select.run import Space, resolve_select_target

    if search_dir is not None:
        search = load_search(search_dir)
        cost_file = Path(search_dir) / "cost.json"
        search_target = json.loads(cost_file.read_text()).get("target") if cost_file.is_file() else None
        target = resolve_select_target(config.target, space_table=search.table, base_ops_=search.base_ops, search_target=search_target)
        space = Space(
            search.base, plugins.bases().get(search.base).base_genotype(), search.skeleton, search.layers, search.space.name,
            search.space.fingerprint(), search.table, target,
            alpha_rows=[torch.log_softmax(a.detach().double(), 0).tolist() for a in search.arch.alphas],
            searched=choose_ops(search.arch, search.table, target),  # the search's α under the selection's budget
        )
    else:
        if config.target is None:
            raise ConfigError("select: without a search, pass --target (e.g. 0.7x)")
        budget = search_budget(base, dataclasses.replace(search_config, target=config.target), cache_dir=cache_root() / "cost_tables")
        name = search_config.space or default_space_name(base)
        space = Space(base, budget.base_genotype, budget.skeleton, budget.layers, name, load_search_space(name).fingerprint(), budget.table, budget.target)
    if base_ops(space.base_genotype, space.layers) is None:
        raise ConfigError(f"select: the search space {space.space_name!r} lacks ops of base {space.base_name!r}: its baselines and score need them")
    check_target(space.target, space.costs, unit=space.table.unit, where="select.target")
    return space


def check_memory(
    job: str, config: C, *, base: str, detector: str, splits: Mapping[str, DataSplit], genotype: Genotype | None = None,
    device: str | None = None, max_memory: str | int | None = None, auto_batch: bool = False, announce: Announce | None = print,
    phase: str | None = None,
) -> C:
    """``config`` when ``job``'s step (a ``SearchConfig``: the search iteration; a ``TrainConfig``: a training step of
    ``genotype``; or ``phase``, one of :data:`netadapt.jobs.preflight.PHASES`) fits the device at its batch; under ``auto_batch`` at the largest batch that fits with the lr scaled (said through
    ``announce``); else one-line :class:`~netadapt.errors.MemoryBudgetError` (:func:`netadapt.jobs.preflight.preflight_memory`,
    whose lines are cached per device and config: measured once, in the job's first seconds, or by ``netadapt estimate``)."""
    from netadapt.engine.distributed import pick_device
    from netadapt.jobs.preflight import preflight_memory

    return preflight_memory(
        job, config, base=base, detector=detector, num_classes=num_classes(splits), genotype=genotype, device=pick_device(device),
        max_memory=max_memory, auto_batch=auto_batch, announce=announce, phase=phase,
    )


def num_classes(splits: Mapping[str, DataSplit]) -> int:
    """Classes of the training split with the background, from its annotations (the datasets are not opened); COCO's 81
    for a file of COCO's size, which parses for minutes, where the classes change the head's memory by little."""
    from netadapt.data.coco import read_json
    from netadapt.jobs.estimate import COCO_CLASSES

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
    import dataclasses

    import torch

    try:
        started = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("config") or {}
    except Exception:  # noqa: BLE001 — not a checkpoint: resuming refuses it with its own line
        return config
    return dataclasses.replace(config, batch_size=started.get("batch_size", config.batch_size), lr=started.get("lr", config.lr))
