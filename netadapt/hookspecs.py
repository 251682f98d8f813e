"""Hook specifications of the ``netadapt`` plugin system (DESIGN §2.2).

Every hook receives a ``register`` callback and calls it once per thing it adds; the core
builds the callback and rejects a name registered twice with an error naming both plugins.
Built-in features are plugins too (``netadapt.plugins.DEFAULT_PLUGINS``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("netadapt")
hookimpl = pluggy.HookimplMarker("netadapt")


@hookspec
def register_bases(register: Callable[[str, Any], None]) -> None:
    """Register base networks: ``register(name, base)``.

    ``base`` builds a network from a genotype, gives the base genotype, loads weights
    (torchvision key format, a path, or ``imagenet``) and exposes feature taps for detectors
    (see ``netadapt.bases.BaseNetwork``).
    """


@hookspec
def register_search_spaces(register: Callable[[str, Any], None]) -> None:
    """Register search spaces: ``register(name, space)`` — candidate ops, super-network depths,
    and which layers are searched."""


@hookspec
def register_cost_models(register: Callable[[str, Any], None]) -> None:
    """Register cost models: ``register(name, model)``; ``model.measure(module, inputs)`` gives a
    ``netadapt.cost.Cost`` (total and per module path; see ``netadapt.cost.CostModel``).
    ``madds`` (fvcore) and ``params`` are built in."""


@hookspec
def register_detectors(register: Callable[[str, Any], None]) -> None:
    """Register detectors: ``register(name, detector)`` — takes a backbone with taps and gives a
    detection model."""


@hookspec
def register_remap_rules(register: Callable[[type, Any], None]) -> None:
    """Register parameter-remapping rules: ``register(module_type, rule)``.

    ``rule(source_module, target_module)`` copies the source's tensors into the target in place
    (DESIGN §1.2); ``netadapt.remap.IGNORE`` marks a type as deliberately left alone. Lookup walks
    the target's class hierarchy, so the most specific registered type wins. A plugin may override
    a built-in rule by registering the same type; the override must be declared with
    ``register(module_type, rule, override=True)``.
    """


@hookspec
def register_strategies(register: Callable[[str, Any], None]) -> None:
    """Register search strategies: ``register(name, strategy)`` (``darts`` and ``sampled`` built in).

    A strategy gives the op weights of the weight step (``weight_step_weights``, no gradient to α)
    and of the α step (``alpha_step_weights``, differentiable in α); see ``netadapt.search.darts``.
    An optional ``for_config(search_config)`` returns the strategy configured for a run.
    """


@hookspec
def register_datasets(register: Callable[[str, Any], None]) -> None:
    """Register datasets: ``register(name, dataset_factory)`` (``coco`` and ``demo`` built in)."""
