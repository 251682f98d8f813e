"""The cost table of a super network and the expected cost of α (DESIGN §1.3, step 2).

Each candidate of each searched layer is counted once with a cost model (fvcore MAdds by
default) on its real input at the search input size, on the device the super network is on;
the table is cached on disk, keyed by base, space, input size, cost model, the versions of the
plugins that register them and the model's ``cache_key()`` (a device, a table file; a model
whose key is ``None`` keeps its own cache and the table is not cached here). The expected cost is differentiable in the op weights:
cost(α) = Σ_layers Σ_o w_o · cost_o, w = softmax(α) (skip costs 0). As in FNA's code, only the
searched layers are counted: the rest of the network is a constant the search cannot change.

After the search, the derived architecture's cost is given both ways, over the same layers
(:class:`DerivedCost`): *predicted*, the sum of the table entries of the chosen ops, and
*measured*, the cost model run on the derived network's searched layers.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from netadapt import __version__, plugins
from netadapt.contracts import optional
from netadapt.cost import CostModel
from netadapt.errors import NetadaptWarning
from netadapt.files import write_json_atomic
from netadapt.genotype import Genotype
from netadapt.search.space import SearchSpace
from netadapt.search.supernet import SuperNetwork

TABLE_VERSION = 1


@dataclass
class CostTable:
    model: str
    unit: str
    input_size: int
    costs: list[dict[str, float]]  # per searched layer: op name → cost

    def tensors(self, device: torch.device | str = "cpu") -> list[torch.Tensor]:
        return [torch.tensor(list(layer.values()), dtype=torch.float32, device=device) for layer in self.costs]

    def cost_of(self, ops: list[str]) -> float:
        """The cost of one choice per layer (a derived architecture's searched layers)."""
        return sum(layer[op] for layer, op in zip(self.costs, ops, strict=True))


def expected_cost(op_weights: list[torch.Tensor], table: list[torch.Tensor]) -> torch.Tensor:
    """Σ_layers Σ_o w_o · cost_o."""
    return sum((weights * costs).sum() for weights, costs in zip(op_weights, table, strict=True))


def build_cost_table(
    supernet: SuperNetwork, *, input_size: int, cost_model: CostModel | str = "madds", cache_dir: Path | None = None
) -> CostTable:
    """Count every candidate on its real input shape (cached under ``cache_dir`` when given and the model allows)."""
    if isinstance(cost_model, str):
        cost_model = plugins.cost_models().get(cost_model)
    cache_key = optional(cost_model, "cache_key", None)
    model_key = cache_key() if cache_key is not None else ""
    owners = _plugin_versions([(plugins.bases(), supernet.base), (plugins.search_spaces(), supernet.space.name), (plugins.cost_models(), cost_model.name)])
    key = hashlib.sha256(
        json.dumps([
            TABLE_VERSION, __version__, supernet.base, supernet.space.fingerprint(), supernet.skeleton.to_dict(), input_size,
            cost_model.name, model_key, owners,
        ]).encode()
    ).hexdigest()[:16]
    cached = cache_dir is not None and model_key is not None
    cache_file = cache_dir / f"cost-{supernet.base}-{supernet.space.name}-{input_size}-{cost_model.name}-{key}.json" if cached else None
    if cache_file is not None and cache_file.is_file():
        cached_table = _read_cached_table(cache_file, [len(mixed.candidates) for mixed in supernet.mixed_ops])
        if cached_table is not None:
            return cached_table
    shapes = _input_shapes(supernet, input_size)
    device = _device_of(supernet)
    costs = []
    for layer, mixed in zip(supernet.layers, supernet.mixed_ops):
        inputs = (torch.zeros(shapes[layer.path], device=device),)
        costs.append({name: (0.0 if op_is_identity(op) else float(cost_model.measure(op, inputs).total)) for name, op in mixed.candidates.items()})
    table = CostTable(model=cost_model.name, unit=cost_model.unit, input_size=input_size, costs=costs)
    if cache_file is not None:
        write_json_atomic(cache_file, table.__dict__, listed=False)
    return table


def _read_cached_table(path: Path, sizes: list[int]) -> CostTable | None:
    """The cached table, or ``None`` (with a warning) when the file is not one of this super network: a
    corrupted cache must not fail every later search at this size; it is measured again and rewritten."""
    try:
        table = CostTable(**json.loads(path.read_text()))
        if [len(layer) for layer in table.costs] == sizes and all(
            isinstance(cost, (int, float)) and math.isfinite(cost) and cost >= 0 for layer in table.costs for cost in layer.values()
        ):
            return table
    except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError, RecursionError):
        pass
    warnings.warn(f"{path}: not a readable cost table; counting the candidates again", NetadaptWarning, stacklevel=3)
    return None


def _plugin_versions(entries: list[tuple[plugins.Registry, str]]) -> list[tuple[str, str, str]]:
    """(plugin, distribution, version) of the plugin that registered each (registry, name): a new
    version of a base, space or cost model plugin may count differently. Unregistered names (a
    space YAML file, a model passed as an object) add nothing."""
    infos = {info.name: info for info in plugins.plugin_infos(include_builtins=True)}
    owners = []
    for registry, name in entries:
        if name in registry:
            info = infos.get(registry.owner(name))
            if info is not None:
                owners.append((info.name, info.distribution, info.version))
    return owners


@dataclass
class DerivedCost:
    """The cost of a derived architecture's searched layers, predicted from the table and measured."""

    model: str
    unit: str
    scope: str  # which layers, at which input
    predicted: float  # Σ of the chosen ops' table entries (skip: 0)
    measured: float | None  # the cost model run on those layers; None: the model measures nothing here
    source: str  # where the costs come from (the model's describe(), else its name)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "predicted_from": "the cost table: the sum of the chosen op's entry of every searched layer (skip: 0)",
            "measured_how": "the cost model run on the derived network's searched layers (one chain per run of consecutive "
            "searched stages, on each chain's real input)" if self.measured is not None else "not measured: the cost model only reads a table",
        }


def derived_cost(
    genotype: Genotype, table: CostTable, best_ops: list[str], *, space: SearchSpace, cost_model: CostModel,
    device: torch.device | str = "cpu", measure: bool = True,
) -> DerivedCost:
    """Predicted and (with ``measure``, where the model can) measured cost of the searched layers of ``genotype``,
    derived with ``best_ops``; the network is measured on ``device``."""
    searched = [s + 1 for s in range(len(genotype.stages)) if space.is_searched(s)]
    scope = f"the searched layers (stages {', '.join(map(str, searched))}) of the derived network at {table.input_size}×{table.input_size}, batch 1"
    measured = None
    if measure and optional(cost_model, "measures", True):
        network = plugins.bases().get(genotype.base).build(genotype).to(device)
        measured = searched_cost(network, space=space, input_size=table.input_size, cost_model=cost_model)
    describe = optional(cost_model, "describe", None)
    source = describe() if describe is not None else cost_model.name
    return DerivedCost(cost_model.name, cost_model.unit, scope, table.cost_of(best_ops), measured, source)


def searched_cost(network: torch.nn.Module, *, space: SearchSpace, input_size: int, cost_model: CostModel) -> float:
    """The cost model run on a built network's searched layers (on the network's device)."""
    device = _device_of(network)
    return sum(cost_model.measure(chain, (torch.zeros(shape, device=device),)).total for chain, shape in searched_chains(network, space, input_size))


def searched_chains(network: torch.nn.Module, space: SearchSpace, input_size: int) -> list[tuple[torch.nn.Sequential, tuple[int, ...]]]:
    """The searched layers of a built network as chains of consecutive searched stages, with each chain's input shape."""
    chains: list[list[str]] = []
    previous = None
    for s, paths in enumerate(network.layer_paths):
        if not space.is_searched(s):
            continue
        present = [path for path in paths if path is not None]  # skip layers are identities
        if previous == s - 1 and chains:
            chains[-1] += present
        else:
            chains.append(present)
        previous = s
    firsts = {chain[0] for chain in chains if chain}
    shapes = _input_shapes_of(network, {path: network.get_submodule(path) for path in firsts}, input_size)
    return [(torch.nn.Sequential(*(network.get_submodule(path) for path in chain)), shapes[chain[0]]) for chain in chains if chain]


def op_is_identity(op: torch.nn.Module) -> bool:
    return isinstance(op, torch.nn.Identity)


def _device_of(module: torch.nn.Module) -> torch.device:
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _input_shapes(supernet: SuperNetwork, input_size: int) -> dict[str, tuple[int, ...]]:
    """The input shape of every searched layer, from one forward pass (uniform op weights)."""
    device = _device_of(supernet)
    supernet.set_op_weights([torch.full((len(layer.candidates),), 1.0 / len(layer.candidates), device=device) for layer in supernet.layers])
    return _input_shapes_of(supernet, {layer.path: mixed for layer, mixed in zip(supernet.layers, supernet.mixed_ops)}, input_size)


def _input_shapes_of(network: torch.nn.Module, modules: dict[str, torch.nn.Module], input_size: int) -> dict[str, tuple[int, ...]]:
    """The input shape of each of ``modules`` (path → module inside ``network``) in one plain forward pass."""
    shapes: dict[str, tuple[int, ...]] = {}

    def record(path: str):
        def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            shapes[path] = tuple(args[0].shape)

        return hook

    hooks = [module.register_forward_pre_hook(record(path)) for path, module in modules.items()]
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            network(torch.zeros(1, 3, input_size, input_size, device=_device_of(network)))  # the plain forward calls every layer
    finally:
        network.train(was_training)
        for hook in hooks:
            hook.remove()
    return shapes
