"""Before a search trains: what it will derive under, and whether it can run (DESIGN §1.6).

:func:`search_budget` builds the untrained super network and its cost table (cached, as the search's) and resolves
``search.target`` against the base network; :func:`preflight_search` refuses, before anything trains, a batch that
would not fit in memory, an infeasible target and a base prior the space cannot take.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from netadapt import plugins
from netadapt.config import SearchConfig
from netadapt.cost import cost_model_for, parse_target
from netadapt.detectors.model import check_training_memory
from netadapt.genotype import Genotype
from netadapt.search.budget import base_ops, check_target, resolve_target
from netadapt.search.cost_table import CostTable, build_cost_table, searched_cost
from netadapt.search.prior import prior_ops
from netadapt.search.space import default_space_name, load_search_space
from netadapt.search.supernet import SuperNetwork, build_supernet


def preflight_search(base_name: str, config: SearchConfig, *, cache_dir: Path | None = None) -> SearchBudget | None:
    """Refuse, before anything trains (the demo base's pretraining included), an input size and batch that would not
    fit in memory, an infeasible ``search.target`` (the cost table of the untrained super network, cached as the
    search's, against it) and a ``search.base_prior`` the base's ops cannot take (:mod:`netadapt.search.prior`).

    Returns the budget it checked (``None`` when there was none to check): passed to
    :func:`~netadapt.search.loop.run_search` (``budget``), the run takes its target as resolved and checked here
    instead of resolving it again."""
    check_training_memory(plugins.bases().get(base_name).base_genotype(), config, section="search")  # the super network holds the base
    if config.target is None and not config.base_prior:
        return None
    budget = search_budget(base_name, config, cache_dir=cache_dir)
    if config.target is not None:
        check_target(budget.target, [list(layer.values()) for layer in budget.table.costs], unit=budget.table.unit)
    if config.base_prior:
        prior_ops(budget.base_genotype, budget.layers)
    return budget


@dataclass(frozen=True)
class SearchBudget:
    """What a search with ``config`` will derive under: the base network's genotype, the super network's skeleton
    (what :func:`~netadapt.search.derive.derive_genotype` fills: every stage at the space's depth), its searched layers,
    cost table, resolved target and the base network's searched-layer cost it was resolved against."""

    base_genotype: Genotype
    skeleton: Genotype
    layers: list
    table: CostTable
    target: float | None
    base_cost: float | None = None


def search_budget(base_name: str, config: SearchConfig, *, cache_dir: Path | None = None) -> SearchBudget:
    """The searched layers, the cost table (cached, as the search's) and ``search.target`` resolved against the base
    network, from the untrained super network: nothing trains."""
    base = plugins.bases().get(base_name)
    genotype, cost_model = base.base_genotype(), cost_model_for(config)
    network = base.build(genotype)
    supernet = build_supernet(base_name, load_search_space(config.space or default_space_name(base_name)), network, genotype)
    table = build_cost_table(supernet, input_size=config.input_size, cost_model=cost_model, cache_dir=cache_dir)
    base_cost, target = base_cost_and_target(config, network, supernet, genotype, table, cost_model)
    return SearchBudget(genotype, supernet.skeleton, list(supernet.layers), table, target, base_cost)


def base_cost_and_target(config: SearchConfig, network: nn.Module, supernet: SuperNetwork, genotype: Genotype, table: CostTable, cost_model):
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

