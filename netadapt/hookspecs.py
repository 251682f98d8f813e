"""Hook specifications of the ``netadapt`` plugin system (DESIGN §2.2; docs/writing-a-plugin.md).

Every hook receives a ``register`` callback and calls it once per thing it adds:
``register(name, thing)``. The core builds the callback; it checks ``thing`` against its
contract in :mod:`netadapt.contracts` (one error line naming the plugin and the missing member)
and rejects a name registered twice with an error naming both plugins and
``NETADAPT_DISABLE_PLUGINS``. ``register(name, thing, override=True)`` replaces a name another
plugin registered before on purpose (built-ins come first); ``netadapt plugins`` shows every
override. Built-in features are plugins too (``netadapt.plugins.DEFAULT_PLUGINS``).
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from netadapt import contracts

hookspec = pluggy.HookspecMarker("netadapt")
hookimpl = pluggy.HookimplMarker("netadapt")


@hookspec
def register_bases(register: Callable[[str, contracts.BaseNetwork], None]) -> None:
    """Register base networks: ``register(name, base)``, ``base`` a :class:`~netadapt.contracts.BaseNetwork`
    whose ``build`` gives a :class:`~netadapt.contracts.Network` (layers, parts and detector taps by path)."""


@hookspec
def register_search_spaces(register: Callable[[str, contracts.SearchSpace], None]) -> None:
    """Register search spaces: ``register(name, space)``, a :class:`~netadapt.contracts.SearchSpace`
    (candidate ops per layer, super-network depths, which stages are searched)."""


@hookspec
def register_cost_models(register: Callable[[str, contracts.CostModel], None]) -> None:
    """Register cost models: ``register(name, model)``, a :class:`~netadapt.contracts.CostModel` whose
    ``measure(module, inputs)`` gives a ``netadapt.cost.Cost`` (``madds`` and ``params`` are built in)."""


@hookspec
def register_detectors(register: Callable[[str, contracts.Detector], None]) -> None:
    """Register detectors: ``register(name, detector)``, a :class:`~netadapt.contracts.Detector` that
    builds a detection model on a network's two taps."""


@hookspec
def register_export_rules(register: Callable[[str, contracts.ExportRule], None]) -> None:
    """Register export rules: ``register(detector_name, rule)``, an :class:`~netadapt.contracts.ExportRule`
    giving the post-processing of that detector's exported backbone and head (``netadapt export``); a
    detector without one is not exported."""


@hookspec
def register_remap_rules(register: Callable[[type, contracts.RemapRule], None]) -> None:
    """Register parameter-remapping rules: ``register(module_type, rule)``; ``rule(source, target)`` fills the
    target module's own tensors from the source's in place (DESIGN §1.2), ``netadapt.remap.IGNORE`` leaves a
    type alone on purpose. Lookup walks the target's class hierarchy: the most specific type wins."""


@hookspec
def register_strategies(register: Callable[[str, contracts.Strategy], None]) -> None:
    """Register search strategies: ``register(name, strategy)``, a :class:`~netadapt.contracts.Strategy`
    giving the op weights of the weight step and the α step (``darts``, ``sampled``, ``fna`` built in)."""


@hookspec
def register_datasets(register: Callable[[str, contracts.Dataset], None]) -> None:
    """Register datasets: ``register(name, dataset)``, a :class:`~netadapt.contracts.Dataset` giving its
    COCO-format splits (``coco`` and ``demo`` built in)."""
