"""The cost table of a super network and the expected cost of α (DESIGN §1.3, step 2).

Each candidate of each searched layer is counted once with a cost model (fvcore MAdds by
default) on its real input at the search input size; the table is cached on disk, keyed by
base, space, input size and cost model. The expected cost is differentiable in the op weights:
cost(α) = Σ_layers Σ_o w_o · cost_o, w = softmax(α) (skip costs 0). As in FNA's code, only the
searched layers are counted: the rest of the network is a constant the search cannot change.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from netadapt import __version__, plugins
from netadapt.engine.files import write_json_atomic
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


def build_cost_table(supernet: SuperNetwork, *, input_size: int, model_name: str = "madds", cache_dir: Path | None = None) -> CostTable:
    """Count every candidate on its real input shape (cached under ``cache_dir`` when given)."""
    key = hashlib.sha256(
        json.dumps([TABLE_VERSION, __version__, supernet.base, supernet.space.fingerprint(), supernet.skeleton.to_dict(), input_size, model_name]).encode()
    ).hexdigest()[:16]
    cache_file = cache_dir / f"cost-{supernet.base}-{supernet.space.name}-{input_size}-{model_name}-{key}.json" if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        data = json.loads(cache_file.read_text())
        return CostTable(**data)
    cost_model = plugins.cost_models().get(model_name)
    shapes = _input_shapes(supernet, input_size)
    costs = []
    for layer, mixed in zip(supernet.layers, supernet.mixed_ops):
        inputs = (torch.zeros(shapes[layer.path]),)
        costs.append({name: (0.0 if op_is_identity(op) else float(cost_model.measure(op, inputs).total)) for name, op in mixed.candidates.items()})
    table = CostTable(model=model_name, unit=cost_model.unit, input_size=input_size, costs=costs)
    if cache_file is not None:
        write_json_atomic(cache_file, table.__dict__)
    return table


def op_is_identity(op: torch.nn.Module) -> bool:
    return isinstance(op, torch.nn.Identity)


def _input_shapes(supernet: SuperNetwork, input_size: int) -> dict[str, tuple[int, ...]]:
    """The input shape of every searched layer, from one forward pass."""
    shapes: dict[str, tuple[int, ...]] = {}

    def record(path: str):
        def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            shapes[path] = tuple(args[0].shape)

        return hook

    hooks = [mixed.register_forward_pre_hook(record(layer.path)) for layer, mixed in zip(supernet.layers, supernet.mixed_ops)]
    supernet.set_op_weights([torch.full((len(layer.candidates),), 1.0 / len(layer.candidates)) for layer in supernet.layers])
    try:
        with torch.no_grad():
            was_training = supernet.training
            supernet.eval()
            supernet(torch.zeros(1, 3, input_size, input_size))  # the plain forward calls every layer
            supernet.train(was_training)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes
