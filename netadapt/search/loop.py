"""The search run (DESIGN §1.3, step 2): alternate weight and α steps, log α, derive the genotype.

The training set is split once, deterministically (``split_seed``), into a half for weight steps
and a half for α steps (``alpha_fraction``); the split is recorded in ``split.json``. An epoch is
``repeat`` passes over the weight half. Each iteration takes a weight step on the weight half with
the op weights the strategy gives (detached from α); from ``alpha_start_epoch`` on, one iteration in
every ``weight_steps_per_alpha_step`` of the strategy (1; ``fna``: 5) also takes an α step on the α
half, with loss ``L_task + λ · log_τ(cost(α))`` (Eq. 3) — with ``search.target``, the term of
:mod:`cost_term` that steers the cost to the target — cost(α) the expected cost of :mod:`cost_table`, whose
table the cost model (``search.cost_model``, configured by ``search.cost_table`` and
``search.cost_options``) fills on the run's device, on rank 0 only (a measured table, such as
timings, differs between measurements; every rank must use the same one).

The derived architecture is the argmax of α per layer, or under a target the exact constrained
choice (:mod:`budget`); a target that no network of the space meets, or that every one does, is
refused before anything trains. The run directory holds ``genotype.yaml`` (the derived architecture, list format),
``alpha_history.csv`` (op probabilities of every layer at the end of every epoch),
``alpha_history.png`` (the same, plotted), ``supernet.pth`` (the super network, α and cost
table), ``cost.json`` (the derived architecture's searched layers: cost predicted from the table
and measured, :class:`~netadapt.search.cost_table.DerivedCost`), ``log.jsonl``, ``split.json``
and ``last.pth`` (the resumable state, cost table included: a resumed run uses the table it
started with and refuses other ``search.cost_*`` settings). A resumed run on CPU ends with the
same α as an uninterrupted one. Under ``torchrun`` the weights are synchronised by DDP and the α gradients by
an all-reduce, so α stays identical on every rank.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Subset

from netadapt import plugins
from netadapt.config import SearchConfig
from netadapt.contracts import optional
from netadapt.cost import cost_model_for, format_cost, parse_target
from netadapt.data.coco import collate_detection
from netadapt.data.sources import DataSplit
from netadapt.detectors.model import build_detector_on, check_training_memory, options_from_config
from netadapt.engine import distributed
from netadapt.engine.loop import Loop, Position, make_optimizer, make_schedule, wrap_ddp
from netadapt.engine.precision import Precision
from netadapt.engine.resume import check_finite_loss, check_same_config, check_same_shapes
from netadapt.engine.runlog import RunLog
from netadapt.engine.sampling import ResumableBatchSampler, SeededSamples
from netadapt.engine.signals import after_last_iteration
from netadapt.engine.throughput import loader_options, prepare_device, to_memory_format
from netadapt.engine.train import batch_to_device
from netadapt.errors import ConfigError
from netadapt.files import load_resume_state, save_torch_atomic, write_json_atomic, write_text_atomic
from netadapt.genotype import Genotype, save_genotype
from netadapt.search.budget import base_ops, check_target, resolve_target
from netadapt.search.cost_table import CostTable, DerivedCost, build_cost_table, derived_cost, expected_cost, searched_cost
from netadapt.search.cost_term import CostTerm
from netadapt.search.derive import choose_ops, decision_summary, derive_genotype
from netadapt.search.prior import apply_base_prior, prior_ops
from netadapt.search.space import default_space_name, load_search_space
from netadapt.search.supernet import ArchitectureParameters, SuperNetwork, build_supernet
from netadapt.weights import Weights, build_with_weights

SEARCH_FORMAT = "netadapt-search"


@dataclass
class SearchResult:
    out_dir: Path
    genotype: Genotype
    iterations: int
    seconds: float
    expected_cost: float
    cost: DerivedCost  # the searched layers of the derived architecture: predicted from the table, measured
    target: float | None  # the hard budget of the searched layers (search.target), in the cost's unit
    decision: dict[str, float]  # how far softmax(α) is from uniform (decision_summary)

    @property
    def derived_cost(self) -> float:
        """The searched layers of the derived architecture, from the cost table (``cost.predicted``)."""
        return self.cost.predicted

    @property
    def cost_unit(self) -> str:
        return self.cost.unit


def split_halves(size: int, *, alpha_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Disjoint (weight half, α half) index lists, fixed by ``seed``."""
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed)).tolist()
    alpha_count = max(1, min(size - 1, round(alpha_fraction * size)))
    return sorted(order[alpha_count:]), sorted(order[:alpha_count])


def run_search(
    *,
    base_name: str,
    detector_name: str,
    weights: Weights | None,
    config: SearchConfig,
    train_split: DataSplit,
    out_dir: str | Path,
    resume: bool = False,
    context: distributed.Context | None = None,
    progress: bool = True,
    cache_dir: Path | None = None,
    stop_after: int | None = None,
) -> SearchResult | None:
    """Search; returns ``None`` when ``stop_after`` interrupts it before the end."""
    context = context or distributed.Context()
    out_dir = Path(out_dir)
    state_path = out_dir / "last.pth"
    state = load_resume_state(state_path, format=SEARCH_FORMAT) if resume else None
    if state is not None:
        check_same_config(state, config, state_path, section="search")
    torch.manual_seed(config.seed)
    space = load_search_space(config.space or default_space_name(base_name))
    strategy = strategy_for(config)
    cost_model = cost_model_for(config)
    dataset = train_split.open(train=True, input_size=config.input_size)
    weight_half, alpha_half = split_halves(len(dataset), alpha_fraction=config.alpha_fraction, seed=config.split_seed)

    source, source_genotype, supernet, detector, arch = _super_network(base_name, detector_name, weights, space, config, dataset.num_classes)
    if state is not None:
        check_same_shapes(state["detector"], detector, state_path)
        detector.load_state_dict(state["detector"])
        arch.load_state_dict(state["alpha"])
    detector.to(context.device)
    arch.to(context.device)
    precision = Precision(config.amp, context.device)  # the detector's forward only: α's softmax and the cost term stay float32
    precision.prepare(to_memory_format(detector, channels_last=config.channels_last))
    prepare_device(context.device)
    if state is not None and "cost_table" in state:  # the table the run started with, not one measured again
        table = CostTable(**state["cost_table"])
    else:
        table = build_cost_table(supernet, input_size=config.input_size, cost_model=cost_model, cache_dir=cache_dir) if context.is_main else None
        table = distributed.broadcast_object(table, context)
    base_cost, target = _base_cost_and_target(config, source, supernet, source_genotype, table, cost_model)  # base_cost: front's base point
    del source
    if target is not None:  # before anything is trained or written
        check_target(target, [list(layer.values()) for layer in table.costs], unit=table.unit)
    cost_term = CostTerm(cost_lambda=config.cost_lambda, cost_log_base=config.cost_log_base, target=target, target_weight=config.target_weight)
    step = SearchStep(
        detector=detector, supernet=supernet, arch=arch, strategy=strategy, config=config, context=context, precision=precision,
        costs=table.tensors(context.device), cost_term=cost_term, unit=table.unit, dataset=dataset, weight_half=weight_half, alpha_half=alpha_half,
    )
    iteration = 0
    if state is not None:
        step.load_state_dict(state)
        iteration = state["iteration"]
    split = {  # written with the first checkpoint: a run that fails before it leaves nothing behind
        "seed": config.split_seed, "alpha_fraction": config.alpha_fraction,
        "weight_image_ids": [dataset.image_ids[i] for i in weight_half],
        "alpha_image_ids": [dataset.image_ids[i] for i in alpha_half],
    }

    split_written = False  # this run's split, written with its first checkpoint; never an earlier run's (--force, other seed)

    def save(done: int) -> None:
        nonlocal split_written
        if not split_written:
            write_json_atomic(out_dir / "split.json", split)
            split_written = True
        save_torch_atomic(
            {"format": SEARCH_FORMAT, "config": asdict(config)} | step.state_dict() | {"iteration": done, "cost_table": table.__dict__},
            state_path,
        )

    log = RunLog(out_dir, keep_until=iteration, enabled=context.is_main)
    loop = Loop(
        total=step.total, iterations_per_epoch=step.iterations_per_epoch, batches=step.batches, description="search",
        progress=progress, context=context, log=log, log_every=config.log_every, save=save, checkpoint_every=config.checkpoint_every,
        checkpoint_path=state_path, shown=step.shown, end_of_epoch=step.end_of_epoch,
    )
    started = time.perf_counter()
    iteration = loop.run(step, start=iteration, stop_after=stop_after).iteration
    total, cost_now = step.total, step.cost_now
    if iteration < total:
        log.close()
        return None
    with after_last_iteration(state_path, doing="the search's derive and final writes (genotype.yaml, supernet.pth)"):
        decision = decision_summary(arch, temperature=alpha_temperature(config, iteration=total - 1, total=total, iterations_per_epoch=step.iterations_per_epoch))
        log.write({"iteration": iteration, **{f"alpha_{name}": value for name, value in decision.items()}})
        if context.distributed:
            _check_alpha_synchronised(arch, context)
            log.write({"iteration": iteration, "world_size": context.world_size, "alpha_identical_across_ranks": True})
        log.close()
        best = choose_ops(arch, table, target)
        genotype = derive_genotype(supernet.skeleton, supernet.layers, best, space_name=space.name)
        genotype = Genotype(**{**genotype.__dict__, "input_size": config.input_size})
        cost = derived_cost(genotype, table, best, space=space, cost_model=cost_model, device=context.device, measure=context.is_main)
        if context.is_main:
            _write_outputs(out_dir, genotype, cost, step, table, target, base_cost, space=space, base_name=base_name, detector_name=detector_name,
                           class_names=list(dataset.class_names))
    return SearchResult(out_dir, genotype, iteration, time.perf_counter() - started, cost_now, cost, target, decision)


def _super_network(base_name: str, detector_name: str, weights: Weights | None, space, config: SearchConfig, num_classes: int):
    """The base network (with ``weights``, else as built), the super network made from it (every candidate op's
    weights remapped from it, DESIGN §1.3 step 1), the detector on the super network, and α."""
    if weights is not None:
        source, source_genotype = build_with_weights(weights, base_name=base_name)
    else:
        source_genotype = plugins.bases().get(base_name).base_genotype()
        source = plugins.bases().get(base_name).build(source_genotype)
    supernet = build_supernet(base_name, space, source, source_genotype)
    detector = build_detector_on(
        supernet, detector_name, num_classes=num_classes, input_size=config.input_size, options=options_from_config(detector_name, config)
    )
    arch = ArchitectureParameters(supernet.layers, generator=torch.Generator().manual_seed(config.seed))
    apply_base_prior(arch, supernet.layers, source_genotype, config.base_prior)
    return source, source_genotype, supernet, detector, arch


def _write_outputs(
    out_dir: Path, genotype: Genotype, cost: DerivedCost, step: SearchStep, table: CostTable, target: float | None, base_cost: float | None,
    *, space, base_name: str, detector_name: str, class_names: list[str],
) -> None:
    """``genotype.yaml``, ``cost.json``, ``alpha_history.csv`` / ``.png`` and ``supernet.pth`` (module docstring)."""
    from netadapt.plots import draw_alpha_history

    save_genotype(genotype, out_dir / "genotype.yaml")
    write_json_atomic(out_dir / "cost.json", cost.to_dict() | {"expected": step.cost_now, "target": target})
    write_text_atomic(out_dir / "alpha_history.csv", _history_csv(step.history))
    draw_alpha_history(step.history, out_dir / "alpha_history.png")
    save_torch_atomic({
        "format": SEARCH_FORMAT, "base": base_name, "detector": detector_name, "space": asdict(space) | {"extra": {}},
        "skeleton": step.supernet.skeleton.to_dict(), "alpha": step.arch.state_dict(), "candidates": step.arch.candidate_names,
        "cost_table": table.__dict__, "detector_state": step.detector.state_dict(), "genotype": genotype.to_dict(),
        "config": asdict(step.config), "class_names": class_names, "base_cost": base_cost,
    }, out_dir / "supernet.pth")


class SearchStep:
    """One search iteration (DESIGN §1.3, step 2), run by the one loop (:class:`~netadapt.engine.loop.Loop`): a weight
    step on a weight-half batch with the op weights the strategy gives (detached from α), then, from
    ``alpha_start_epoch`` on and once per ``weight_steps_per_alpha_step`` of the strategy from each epoch's first
    iteration (FNA's workflow ``[('arch', 1), ('train', 5)]``), an α step on the next α-half batch.

    It owns what a search iteration changes and its checkpoint holds: the detector's weights and their optimiser
    and schedule, α and its optimiser, the strategy's random generator, and the history of softmax(α) per epoch.
    """

    def __init__(
        self, *, detector: nn.Module, supernet: SuperNetwork, arch: ArchitectureParameters, strategy, config: SearchConfig,
        context: distributed.Context, precision: Precision, costs: list[torch.Tensor], cost_term: CostTerm, unit: str,
        dataset, weight_half: list[int], alpha_half: list[int],
    ) -> None:
        self.detector, self.supernet, self.arch, self.strategy = detector, supernet, arch, strategy
        self.config, self.context, self.precision = config, context, precision
        self.costs, self.cost_term, self.unit = costs, cost_term, unit
        self.alpha_every = optional(strategy, "weight_steps_per_alpha_step", 1)
        self.model = wrap_ddp(detector, context, find_unused_parameters=not optional(strategy, "uses_all_parameters", False))
        weight_epoch = weight_half * config.repeat  # an epoch: `repeat` passes over the weight half (mmdet's RepeatDataset)
        self.weight_sampler = ResumableBatchSampler(
            len(weight_epoch), batch_size=config.batch_size, seed=config.seed, rank=context.rank, world_size=context.world_size
        )
        self.alpha_sampler = ResumableBatchSampler(
            len(alpha_half), batch_size=config.batch_size, seed=config.seed + 1, rank=context.rank, world_size=context.world_size
        )
        self.weight_loader = _loader(dataset, weight_epoch, self.weight_sampler, config, context.device)
        self.alpha_loader = _loader(dataset, alpha_half, self.alpha_sampler, config, context.device)
        self.iterations_per_epoch = self.weight_sampler.batches_per_epoch
        self.total = config.epochs * self.iterations_per_epoch
        self.optimizer = make_optimizer(detector.parameters(), config)
        self.schedule = make_schedule(self.optimizer, config, total=self.total, iterations_per_epoch=self.iterations_per_epoch)
        self.alpha_optimizer = torch.optim.Adam(
            arch.parameters(), lr=config.alpha_lr, betas=tuple(config.alpha_betas), weight_decay=config.alpha_weight_decay
        )
        self.generator = torch.Generator().manual_seed(config.seed + context.rank)
        self.history: list[list] = []
        self.alpha_batches = iter(())
        self.cost_now = _expected_cost_now(arch, costs, self.temperature(0))

    def temperature(self, iteration: int) -> float:
        return alpha_temperature(self.config, iteration=iteration, total=self.total, iterations_per_epoch=self.iterations_per_epoch)

    def batches(self, epoch: int, first: int) -> DataLoader:
        """The weight half's batches of ``epoch`` from ``first``; the α half's from the α step that position had reached."""
        self.weight_sampler.set_position(epoch, first)
        self.alpha_batches = _cycle(self.alpha_loader, self.alpha_sampler, epoch, -(-first // self.alpha_every))
        return self.weight_loader

    def __call__(self, batch, at: Position) -> dict[str, Any]:
        images, targets = batch
        self.detector.train()
        temperature = self.temperature(at.iteration)
        self.supernet.set_op_weights(self.strategy.weight_step_weights(self.arch, temperature=temperature, generator=self.generator))
        with self.precision.autocast():
            task_loss = _task_loss(self.model, images, targets, self.context.device)
        check_finite_loss(float(task_loss.detach()), iteration=at.iteration + 1)
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.backward(task_loss)
        self.precision.step(self.optimizer, clip_parameters=self.detector.parameters(), clip=self.config.grad_clip)
        self.schedule.step()
        record: dict[str, Any] = {"lr": self.schedule.get_last_lr()[0], "loss": float(task_loss.detach())}
        if at.epoch + 1 >= self.config.alpha_start_epoch and at.batch % self.alpha_every == 0:
            record |= _alpha_step(
                self.detector, self.supernet, self.arch, self.strategy, self.alpha_optimizer, next(self.alpha_batches), self.costs,
                self.cost_term, self.config, self.context, self.generator, self.precision, temperature,
            )
        self.cost_now = _expected_cost_now(self.arch, self.costs, temperature)
        record["expected_cost"] = self.cost_now
        return record

    def shown(self, record: dict[str, Any], at: Position) -> dict[str, Any]:
        return {"epoch": at.epoch + 1, "loss": record["loss"], "cost": format_cost(self.cost_now, self.unit), "arch": _short(self.arch.best_ops())}

    def end_of_epoch(self, epoch: int) -> None:
        self.history += _history_rows(epoch, self.supernet, self.arch, self.config)

    def state_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector.state_dict(), "alpha": self.arch.state_dict(), "optimizer": self.optimizer.state_dict(),
            "alpha_optimizer": self.alpha_optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(), "history": self.history, "precision": self.precision.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The optimisers, schedule, generator and history (the detector and α are loaded before they move to the device)."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        self.history = state["history"]
        self.precision.load_state_dict(state.get("precision", {}))
        self.cost_now = _expected_cost_now(self.arch, self.costs, self.temperature(state["iteration"]))  # a run resumed at its end runs no step


def preflight_search(base_name: str, config: SearchConfig, *, cache_dir: Path | None = None) -> None:
    """Refuse, before anything trains (the demo base's pretraining included), an input size and batch that would not
    fit in memory, an infeasible ``search.target`` (the cost table of the untrained super network, cached as the
    search's, against it) and a ``search.base_prior`` the base's ops cannot take (:mod:`netadapt.search.prior`)."""
    check_training_memory(plugins.bases().get(base_name).base_genotype(), config, section="search")  # the super network holds the base
    if config.target is None and not config.base_prior:
        return
    budget = search_budget(base_name, config, cache_dir=cache_dir)
    if config.target is not None:
        check_target(budget.target, [list(layer.values()) for layer in budget.table.costs], unit=budget.table.unit)
    if config.base_prior:
        prior_ops(budget.base_genotype, budget.layers)


@dataclass(frozen=True)
class SearchBudget:
    """What a search with ``config`` will derive under: the base network's genotype, the super network's skeleton
    (what :func:`~netadapt.search.derive.derive_genotype` fills: every stage at the space's depth), its searched layers,
    cost table and resolved target."""

    base_genotype: Genotype
    skeleton: Genotype
    layers: list
    table: CostTable
    target: float | None


def search_budget(base_name: str, config: SearchConfig, *, cache_dir: Path | None = None) -> SearchBudget:
    """The searched layers, the cost table (cached, as the search's) and ``search.target`` resolved against the base
    network, from the untrained super network: nothing trains."""
    base = plugins.bases().get(base_name)
    genotype, cost_model = base.base_genotype(), cost_model_for(config)
    network = base.build(genotype)
    supernet = build_supernet(base_name, load_search_space(config.space or default_space_name(base_name)), network, genotype)
    table = build_cost_table(supernet, input_size=config.input_size, cost_model=cost_model, cache_dir=cache_dir)
    target = _base_cost_and_target(config, network, supernet, genotype, table, cost_model)[1]
    return SearchBudget(genotype, supernet.skeleton, list(supernet.layers), table, target)


def _base_cost_and_target(config: SearchConfig, network: nn.Module, supernet: SuperNetwork, genotype: Genotype, table: CostTable, cost_model):
    """The base network's searched-layer cost (measured when the target is relative, ``0.7x``, and the space lacks the
    base's ops) and ``search.target`` resolved against it (``None`` without a target)."""
    relative = config.target is not None and parse_target(config.target)[1]
    base_cost = _base_cost(network, supernet, genotype, table, cost_model, measure=relative)
    return base_cost, (resolve_target(config.target, base_cost) if config.target is not None else None)


def _base_cost(network: nn.Module, supernet: SuperNetwork, genotype: Genotype, table: CostTable, cost_model, *, measure: bool) -> float | None:
    """The base network's searched layers: the table's entries of its ops where they are candidates (as the
    derived network is predicted), else, with ``measure``, the cost model run on them (a base whose ops the
    space lacks; a relative target needs it), else ``None``."""
    ops = base_ops(genotype, supernet.layers)
    if ops is not None:
        return table.cost_of(ops)
    return searched_cost(network, space=supernet.space, input_size=table.input_size, cost_model=cost_model) if measure else None


def strategy_for(config: SearchConfig):
    """The strategy ``search.strategy`` names, configured by its ``for_config`` (sampled: ``search.sample_k``,
    fna: ``search.strategy_options``); a strategy without one takes no ``strategy_options``."""
    strategy = plugins.strategies().get(config.strategy)
    for_config = optional(strategy, "for_config", None)
    if for_config is not None:
        return for_config(config)
    if config.strategy_options:
        raise ConfigError(f"search.strategy_options: strategy {config.strategy!r} takes no options")
    return strategy


def _alpha_step(
    detector, supernet: SuperNetwork, arch: ArchitectureParameters, strategy, alpha_optimizer, batch, costs, cost_term: CostTerm,
    config: SearchConfig, context, generator, precision: Precision, temperature: float,
) -> dict[str, float]:
    """One α step: L_task + the cost term on an α-half batch (Eq. 3: λ · log_τ(cost(α)); with a target
    the constrained form of :mod:`netadapt.search.cost_term`); α gradients averaged over ranks, then
    clipped at ``search.alpha_grad_clip`` (FNA's code: 35).

    Only α's gradient is computed (``torch.autograd.grad``): the weights' gradients, which the α step
    does not use, are never formed. The detector runs outside its DDP wrapper here, so DDP's
    gradient reduction stays with the weight step; α is all-reduced by hand.
    """
    images, targets = batch
    op_weights = strategy.alpha_step_weights(arch, temperature=temperature, generator=generator)
    supernet.set_op_weights(op_weights)
    with precision.autocast():  # op_weights (softmax of α) were computed outside it, in float32, as is the cost term
        task_loss = _task_loss(detector, images, targets, context.device)
    cost = expected_cost(op_weights, costs)
    cost_loss = cost_term.loss(cost)
    alphas = list(arch.parameters())
    for alpha, grad in zip(alphas, precision.grad(task_loss + cost_loss, alphas)):
        alpha.grad = grad
    if context.distributed:
        for alpha in arch.parameters():
            dist.all_reduce(alpha.grad)
            alpha.grad /= context.world_size
    if config.alpha_grad_clip > 0:
        nn.utils.clip_grad_norm_(alphas, config.alpha_grad_clip)
    if not precision.overflowed(alpha.grad for alpha in alphas):  # fp16: an overflow on any rank reached all in the all-reduce
        alpha_optimizer.step()
    return {"alpha_task_loss": float(task_loss.detach()), "cost_loss": float(cost_loss.detach()), "temperature": temperature}


def alpha_temperature(config: SearchConfig, *, iteration: int, total: int, iterations_per_epoch: int) -> float:
    """T of softmax(α / T) at ``iteration`` (0-based): ``alpha_temperature`` until α updates start, then
    annealed geometrically to ``alpha_temperature_end`` at the last iteration (FBNet, Wu et al. 2019, §3.3;
    GDAS, Dong & Yang 2019, anneal it too). As T falls, softmax(α / T) nears the one-hot derived architecture,
    so the expected cost that the cost term steers becomes the cost of the architecture that will be derived."""
    start, end = config.alpha_temperature, config.alpha_temperature_end
    first = (config.alpha_start_epoch - 1) * iterations_per_epoch
    if end is None or iteration <= first or total <= first + 1:
        return start
    progress = min(1.0, (iteration - first) / (total - 1 - first))
    return start * (end / start) ** progress


@torch.no_grad()
def _expected_cost_now(arch: ArchitectureParameters, costs: list[torch.Tensor], temperature: float) -> float:
    return float(expected_cost(arch.probabilities(temperature=temperature), costs))


def _check_alpha_synchronised(arch: ArchitectureParameters, context: distributed.Context) -> None:
    """Every rank must derive the same architecture (FNA's code did not: its issue #3)."""
    mine = [alpha.detach().cpu() for alpha in arch.alphas]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, mine)
    for rank, theirs in enumerate(gathered):
        if not all(torch.equal(a, b) for a, b in zip(mine, theirs)):
            raise RuntimeError(f"α differs between rank {context.rank} and rank {rank}: the α gradients were not synchronised")


def _task_loss(model: nn.Module, images, targets, device: torch.device) -> torch.Tensor:
    return sum(model(*batch_to_device(images, targets, device)).values())


def _loader(dataset, indices: list[int], sampler: ResumableBatchSampler, config: SearchConfig, device: torch.device) -> DataLoader:
    return DataLoader(
        SeededSamples(Subset(dataset, indices), seed=config.seed), batch_sampler=sampler, collate_fn=collate_detection,
        **loader_options(config, device),
    )


def _cycle(loader: DataLoader, sampler: ResumableBatchSampler, epoch: int, batch: int):
    """α-half batches for one epoch of weight steps, from the position matching ``batch``; restarts when exhausted."""
    sampler.set_position(epoch, batch % sampler.batches_per_epoch)
    while True:
        yield from loader
        sampler.set_position(epoch, 0)


def _history_rows(epoch: int, supernet: SuperNetwork, arch: ArchitectureParameters, config: SearchConfig) -> list[list]:
    probabilities = arch.probabilities(temperature=config.alpha_temperature)
    rows = []
    for number, (layer, layer_probabilities) in enumerate(zip(supernet.layers, probabilities), start=1):
        for op, probability in zip(layer.candidates, layer_probabilities.tolist()):
            rows.append([epoch, number, layer.stage + 1, layer.layer + 1, op.name, round(probability, 6)])
    return rows


HISTORY_HEADER = ["epoch", "layer", "stage", "stage_layer", "op", "probability"]


def _history_csv(rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HISTORY_HEADER)
    writer.writerows(rows)
    return buffer.getvalue()


def _short(ops: list[str]) -> str:
    return " ".join(op.replace("_", "") for op in ops)
