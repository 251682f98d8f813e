"""A hard cost budget: the target's grammar, its feasibility, and the exact constrained derive (DESIGN §1.6)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from netadapt.cost import parse_cost
from netadapt.errors import ConfigError
from netadapt.search.budget import check_target, constrained_choice, cost_range


@pytest.mark.parametrize(("text", "value"), [
    ("250M", 250e6), ("0.25B", 0.25e9), ("30000000", 30e6), ("20", 20.0), ("20ms", 20.0), ("12.5 ms", 12.5),
    ("250M MAdds", 250e6), ("1.5e8", 1.5e8), ("3K", 3e3), (7, 7.0), (0.25e9, 0.25e9), ("0.3G", 0.3e9),
])
def test_a_target_is_read_in_the_cost_models_unit(text, value) -> None:
    assert parse_cost(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["abc", "-5", "0", "M", "250X3", True, "nan", "inf", "1e400"])
def test_a_malformed_target_is_one_config_error(text) -> None:
    with pytest.raises(ConfigError, match="search.target"):
        parse_cost(text)


def _brute_force(scores, costs, target):
    best = None
    for choice in itertools.product(*(range(len(layer)) for layer in costs)):
        cost = math.fsum(costs[l][o] for l, o in enumerate(choice))
        if cost <= target:
            score = math.fsum(scores[l][o] for l, o in enumerate(choice))
            if best is None or score > best[0]:
                best = (score, choice)
    return best


@pytest.mark.parametrize("seed", range(40))
def test_the_constrained_choice_equals_brute_force_and_never_exceeds_the_target(seed: int) -> None:
    rng = random.Random(seed)
    layers, ops = rng.randint(1, 6), rng.randint(2, 5)
    integer = seed % 2 == 0  # MAdds (integers) and latencies (floats)
    costs = [[float(rng.randint(0, 50)) if integer else rng.uniform(0, 5) for _ in range(ops)] for _ in range(layers)]
    scores = [[math.log(p) for p in _probabilities(rng, ops)] for _ in range(layers)]
    cheapest, dearest = cost_range(costs)
    target = rng.uniform(cheapest, dearest)
    chosen = constrained_choice(scores, costs, target)
    best_score, _ = _brute_force(scores, costs, target)
    assert math.fsum(costs[l][o] for l, o in enumerate(chosen)) <= target
    assert math.fsum(scores[l][o] for l, o in enumerate(chosen)) == pytest.approx(best_score, abs=1e-12)


def _probabilities(rng: random.Random, size: int) -> list[float]:
    weights = [rng.expovariate(1.0) for _ in range(size)]
    return [w / sum(weights) for w in weights]


def test_an_unconstraining_target_keeps_the_argmax_and_the_cheapest_target_takes_the_cheapest_ops() -> None:
    scores = [[-0.1, -2.0, -3.0], [-3.0, -0.2, -2.0]]
    costs = [[10.0, 5.0, 1.0], [10.0, 20.0, 2.0]]
    assert constrained_choice(scores, costs, 30.0) == [0, 1]
    assert constrained_choice(scores, costs, 3.0) == [2, 2]
    with pytest.raises(ValueError):
        constrained_choice(scores, costs, 2.5)


def test_a_target_outside_the_space_is_refused_naming_the_bounds() -> None:
    costs = [[10e6, 5e6, 0.0], [20e6, 10e6]]
    check_target(15e6, costs, unit="MAdds")
    with pytest.raises(ConfigError, match=r"below the cheapest network of the search space \(10.00M MAdds"):
        check_target(9e6, costs, unit="MAdds")
    with pytest.raises(ConfigError, match=r"above what any network of the search space costs \(30.00M MAdds"):
        check_target(31e6, costs, unit="MAdds")


def test_the_search_budget_derives_on_the_super_networks_depths(tmp_path) -> None:
    """What the benchmarks draw random architectures from: ops chosen in layers deeper than the base must reach
    the genotype, and a relative target is relative to the base's own ops in the table."""
    from netadapt.config import SearchConfig
    from netadapt.search.budget import base_ops
    from netadapt.search.derive import derive_genotype
    from netadapt.search.loop import search_budget

    budget = search_budget("mobilenetv2", SearchConfig(input_size=64, target="0.7x"), cache_dir=tmp_path)
    genotype = derive_genotype(budget.skeleton, budget.layers, ["k3_e3"] * len(budget.layers), space_name="fna")
    assert [len(stage.ops) for stage in genotype.stages] == genotype.extra["super_depths"] == [1, 4, 4, 4, 4, 4, 1]
    assert [len(stage.ops) for stage in budget.base_genotype.stages] == [1, 2, 3, 4, 3, 3, 1]  # MobileNetV2's
    assert budget.target == pytest.approx(0.7 * budget.table.cost_of(base_ops(budget.base_genotype, budget.layers)))
