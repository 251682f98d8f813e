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

The step is :mod:`~netadapt.search.step`, the final writes :mod:`~netadapt.search.outputs`, what a search will derive
under (checked before it trains) :mod:`~netadapt.search.preflight`; this module is the run that joins them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from netadapt import plugins
from netadapt.config import SearchConfig
from netadapt.cost import cost_model_for
from netadapt.data.sources import DataSplit
from netadapt.detectors.model import build_detector_on, options_from_config
from netadapt.engine import distributed
from netadapt.engine.precision import Precision
from netadapt.engine.resume import check_same_shapes
from netadapt.engine.run import Run
from netadapt.engine.signals import after_last_iteration
from netadapt.engine.throughput import prepare_device, to_memory_format
from netadapt.files import write_json_atomic
from netadapt.genotype import Genotype
from netadapt.search.budget import check_target
from netadapt.search.cost_table import CostTable, DerivedCost, build_cost_table, derived_cost
from netadapt.search.cost_term import CostTerm
from netadapt.search.derive import choose_ops, decision_summary, derive_genotype
from netadapt.search.outputs import SEARCH_FORMAT, write_search_outputs
from netadapt.search.preflight import SearchBudget, base_cost_and_target, preflight_search, search_budget
from netadapt.search.prior import apply_base_prior
from netadapt.search.space import default_space_name, load_search_space
from netadapt.search.step import SearchData, SearchStep, alpha_every, alpha_temperature, split_halves, strategy_for
from netadapt.search.supernet import ArchitectureParameters, build_supernet
from netadapt.weights import Weights, build_with_weights

__all__ = [  # the run, and the names jobs and benchmarks import from here (the step, preflight and budget moved out)
    "SEARCH_FORMAT", "SearchBudget", "SearchResult", "SearchStep", "alpha_temperature", "preflight_search", "run_search",
    "search_budget", "split_halves", "strategy_for",
]


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
    budget: SearchBudget | None = None,
) -> SearchResult | None:
    """Search; returns ``None`` when ``stop_after`` interrupts it before the end.

    ``budget``: what :func:`~netadapt.search.preflight.preflight_search` returned for this config; where its cost table
    is the run's (a resumed run keeps the table it started with, a measured one may differ), its target, resolved and
    checked there, is taken as it is instead of being resolved and checked again."""
    context = context or distributed.Context()
    out_dir = Path(out_dir)
    run = Run(out_dir, format=SEARCH_FORMAT, config=config, section="search", resume=resume, context=context)
    state, state_path = run.state, run.path
    torch.manual_seed(config.seed)
    space = load_search_space(config.space or default_space_name(base_name))
    strategy = strategy_for(config)
    cost_model = cost_model_for(config)
    dataset = train_split.open(train=True, input_size=config.input_size)
    weight_half, alpha_half = split_halves(len(dataset), alpha_fraction=config.alpha_fraction, seed=config.split_seed)

    source, source_genotype, supernet, detector, arch = _super_network(base_name, detector_name, weights, space, config, dataset.num_classes)
    if state is not None:  # another dataset's classes: one line, not load_state_dict's error
        check_same_shapes(state["detector"], detector, state_path)
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
    if budget is not None and budget.table == table:  # resolved and checked by preflight_search against this very table
        base_cost, target = budget.base_cost, budget.target
    else:
        base_cost, target = base_cost_and_target(config, source, supernet, source_genotype, table, cost_model)  # base_cost: front's base point
        if target is not None:  # before anything is trained or written
            check_target(target, [list(layer.values()) for layer in table.costs], unit=table.unit)
    del source
    cost_term = CostTerm(cost_lambda=config.cost_lambda, cost_log_base=config.cost_log_base, target=target, target_weight=config.target_weight)
    data = SearchData(dataset, weight_half=weight_half, alpha_half=alpha_half, config=config, context=context, alpha_every=alpha_every(strategy))
    step = SearchStep(
        detector=detector, supernet=supernet, arch=arch, strategy=strategy, config=config, context=context, precision=precision,
        costs=table.tensors(context.device), cost_term=cost_term, unit=table.unit, iterations_per_epoch=data.iterations_per_epoch, data=data,
    )
    run.restore(step)
    split = {  # written with the run's first checkpoint, never an earlier run's (--force, other seed): a run that fails before it leaves nothing
        "seed": config.split_seed, "alpha_fraction": config.alpha_fraction,
        "weight_image_ids": [dataset.image_ids[i] for i in weight_half],
        "alpha_image_ids": [dataset.image_ids[i] for i in alpha_half],
    }
    log = run.log()
    loop = run.loop(
        step, log=log, log_every=config.log_every, checkpoint_every=config.checkpoint_every, extra=lambda: {"cost_table": table.__dict__},
        first=lambda: write_json_atomic(out_dir / "split.json", split),
        total=step.total, iterations_per_epoch=step.iterations_per_epoch, batches=data.batches, description="search", progress=progress,
        shown=step.shown, end_of_epoch=step.end_of_epoch,
    )
    started = time.perf_counter()
    iteration = loop.run(step, start=run.start, stop_after=stop_after).iteration
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
        genotype = genotype.at_input_size(config.input_size)
        cost = derived_cost(genotype, table, best, space=space, cost_model=cost_model, device=context.device, measure=context.is_main)
        if context.is_main:
            write_search_outputs(out_dir, genotype, cost, step, table, target, base_cost, space=space, base_name=base_name, detector_name=detector_name,
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



def _check_alpha_synchronised(arch: ArchitectureParameters, context: distributed.Context) -> None:
    """Every rank must derive the same architecture (FNA's code did not: its issue #3)."""
    mine = [alpha.detach().cpu() for alpha in arch.alphas]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, mine)
    for rank, theirs in enumerate(gathered):
        if not all(torch.equal(a, b) for a, b in zip(mine, theirs)):
            raise RuntimeError(f"α differs between rank {context.rank} and rank {rank}: the α gradients were not synchronised")

