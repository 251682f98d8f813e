"""A hard cost budget (DESIGN §1.6): its feasibility and the exact constrained derive.

With an additive cost table, choosing one op per searched layer to maximise Σ log p(op) subject to
Σ cost(op) ≤ target is a multiple-choice knapsack. :func:`constrained_choice` solves it exactly by
dynamic programming over the Pareto frontier of (cost, score) pairs, layer by layer: a partial
choice survives only if no other partial choice of the same layers is both cheaper (or as cheap)
and better scored. The frontier stays small because a stage's layers share their table entries,
so most sums coincide; no quantisation of the costs is needed, which keeps the result exact for
latencies (floats) as for MAdds (integers), and the final sum is checked on the table itself.

Since log softmax(α / T)_o = α_o / T − log Z_layer and log Z_layer is the same for every op of a
layer, the constrained choice is the same at every temperature: it depends on α alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from netadapt.cost import format_cost, parse_target
from netadapt.errors import ConfigError
from netadapt.genotype import Genotype
from netadapt.search.supernet import SearchedLayer

def resolve_target(value: str | float | int, base_cost: float | None) -> float:
    """``search.target`` in the cost model's unit: a cost as it is, ``0.7x`` times ``base_cost``, the base
    network's searched layers (``None``: not known, and a relative target is an error)."""
    number, relative = parse_target(value)
    if not relative:
        return number
    if base_cost is None:
        raise ConfigError(f"search.target {value!r}: the base network's cost is not known here, so no target can be relative to it")
    return number * base_cost


def base_ops(base_genotype: Genotype, layers: Sequence[SearchedLayer]) -> list[str] | None:
    """The op of every searched layer that makes the super network compute the base network: the base's op
    where the base has the layer, ``skip`` where the super network is deeper; ``None`` when one is no candidate."""
    names = []
    for layer in layers:
        real = [op for op in base_genotype.stages[layer.stage].ops if not op.is_skip]
        name = real[layer.layer].name if layer.layer < len(real) else "skip"
        if name not in {op.name for op in layer.candidates}:
            return None
        names.append(name)
    return names


def cost_range(costs: Sequence[Sequence[float]]) -> tuple[float, float]:
    """The cheapest and the most expensive network of the space: Σ of each layer's min and max entry."""
    return math.fsum(min(layer) for layer in costs), math.fsum(max(layer) for layer in costs)


def check_target(target: float, costs: Sequence[Sequence[float]], *, unit: str, where: str = "search.target") -> None:
    """A ``ConfigError`` when no network of the space meets ``target``, or every network does (the budget
    constrains nothing: a typo, or the wrong unit)."""
    cheapest, dearest = cost_range(costs)
    if target < cheapest:
        raise ConfigError(
            f"{where}: {format_cost(target, unit)} is below the cheapest network of the search space "
            f"({format_cost(cheapest, unit)} for the searched layers)"
        )
    if target > dearest:
        raise ConfigError(
            f"{where}: {format_cost(target, unit)} is above what any network of the search space costs "
            f"({format_cost(dearest, unit)} for the searched layers at most): it constrains nothing"
        )


def constrained_choice(scores: Sequence[Sequence[float]], costs: Sequence[Sequence[float]], target: float) -> list[int]:
    """Per layer the index of one op, maximising Σ scores subject to Σ costs ≤ target (exact).

    ``scores[l][o]`` is the score of op ``o`` in layer ``l`` (log p(op)); ``costs`` has the same shape.
    Raises ``ValueError`` when no choice meets the target. Among equally scored choices the cheapest
    wins, then the one with the lowest op indices (deterministic).
    """
    if len(scores) != len(costs) or any(len(s) != len(c) for s, c in zip(scores, costs)):
        raise ValueError("scores and costs must have the same shape")
    # A frontier entry: (cost, -score, choice); sorted by cost, strictly increasing score.
    frontier: list[tuple[float, float, tuple[int, ...]]] = [(0.0, -0.0, ())]
    cheapest_rest = [math.fsum(min(layer) for layer in costs[l:]) for l in range(len(costs) + 1)]
    for l, (layer_scores, layer_costs) in enumerate(zip(scores, costs)):
        budget = target - cheapest_rest[l + 1]
        candidates = [
            (cost + layer_costs[o], minus_score - layer_scores[o], choice + (o,))
            for cost, minus_score, choice in frontier
            for o in range(len(layer_costs))
            if cost + layer_costs[o] <= budget
        ]
        if not candidates:
            raise ValueError(f"no choice of ops meets the target {target}")
        candidates.sort()
        frontier, best = [], math.inf
        for entry in candidates:
            if entry[1] < best:  # better scored than every cheaper entry
                frontier.append(entry)
                best = entry[1]
    return list(frontier[-1][2])
