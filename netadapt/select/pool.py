"""The pool of candidates a selection trains (DESIGN §1.6, "Selection that wins"): the obvious baselines, the
search's derived network, and solutions of the exact constrained choice on the remap-aware score.

Every candidate is a list of ops, one per searched layer of the super network (``skip`` where a layer is dropped or
not inserted), within the target by the cost table. The baselines are what a user would try by hand:

- ``base``: the base network itself, when it fits;
- ``base-pruned-depth``: the base's ops kept, the fewest layers dropped (``skip``) that meet the target — the exact
  constrained choice with scores base op 0, ``skip`` −1, anything else −100;
- ``base-pruned-width``: the base's ops kept, the fewest layers narrowed (the same kernel at the smallest expansion
  of the candidates) that meet the target — scores base op 0, same kernel narrower −1, anything else −100; where
  narrowing alone cannot meet the target, layers are dropped too (−50).

The scored candidates maximise Σ remap-aware score (:mod:`netadapt.select.score`) under the target, alone and with
``alpha_weight`` · log softmax(α) of a search added; each also with a penalty per changed layer (``change_penalty``,
NetAdapt's bias towards small changes), so that the pool spans from "the least distortion" to "the fewest changes".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from netadapt.genotype import parse_op
from netadapt.search.budget import constrained_choice

BASELINES = ("base", "base-pruned-depth", "base-pruned-width")


@dataclass
class Candidate:
    name: str
    origin: str  # baseline, search, score, score+alpha
    ops: list[str]
    cost: float = 0.0
    changed: int = 0  # searched layers whose op differs from the base's
    scores: dict[str, float] = field(default_factory=dict)


def changed_layers(ops: Sequence[str], base: Sequence[str]) -> int:
    return sum(a != b for a, b in zip(ops, base, strict=True))


def cost_of(ops: Sequence[str], names: list[list[str]], costs: list[list[float]]) -> float:
    """Σ of the chosen ops' table entries."""
    return math.fsum(layer[row.index(op)] for layer, row, op in zip(costs, names, ops, strict=True))


def within(cost: float, target: float) -> bool:
    """``cost ≤ target`` up to float summation (the constrained choice's own sum may differ in the last bit)."""
    return cost <= target * (1 + 1e-9)


def _choose(names: list[list[str]], scores: list[list[float]], costs: list[list[float]], target: float) -> list[str] | None:
    try:
        chosen = constrained_choice(scores, costs, target)
    except ValueError:
        return None
    return [row[i] for row, i in zip(names, chosen)]


def pruned_by_depth(names: list[list[str]], base: list[str], costs: list[list[float]], target: float) -> list[str] | None:
    scores = [[0.0 if n == kept else -1.0 if n == "skip" else -100.0 for n in row] for row, kept in zip(names, base)]
    return _choose(names, scores, costs, target)


def pruned_by_width(names: list[list[str]], base: list[str], costs: list[list[float]], target: float) -> list[str] | None:
    def narrower(row: list[str], kept: str) -> str | None:
        if kept == "skip":
            return None
        op = parse_op(kept)
        same_kernel = [parse_op(n) for n in row if n != "skip" and parse_op(n).kernel == op.kernel and parse_op(n).expansion < op.expansion]
        return min(same_kernel, key=lambda o: o.expansion).name if same_kernel else None

    scores = []
    for row, kept in zip(names, base):
        narrow = narrower(row, kept)
        scores.append([0.0 if n == kept else -1.0 if n == narrow else -50.0 if n == "skip" else -100.0 for n in row])
    return _choose(names, scores, costs, target)


def build_pool(
    *,
    names: list[list[str]],
    base: list[str],
    costs: list[list[float]],
    target: float,
    score_rows: list[list[float]],
    alpha_rows: list[list[float]] | None = None,
    searched: list[str] | None = None,
    change_penalties: Sequence[float] = (0.0, 0.01, 0.05),
    alpha_weight: float = 0.01,
) -> list[Candidate]:
    """The candidates under ``target``, baselines first, without duplicates (the first name of an op list is kept).

    ``score_rows``: −distortion per layer and op; ``alpha_rows``: log softmax(α) (a search); ``searched``: the
    search's derived ops. ``change_penalties``: each a scored candidate with that much subtracted per changed layer;
    ``alpha_weight`` scales log softmax(α) against the distortion (a distortion of 0.01 is a large change)."""
    pool: list[Candidate] = []

    def add(name: str, origin: str, ops: list[str] | None) -> None:
        if ops is None or any(c.ops == ops for c in pool):
            return
        cost = cost_of(ops, names, costs)
        if not within(cost, target):
            return
        pool.append(Candidate(name, origin, ops, cost, changed_layers(ops, base)))

    add("base", "baseline", list(base))
    add("base-pruned-depth", "baseline", pruned_by_depth(names, base, costs, target))
    add("base-pruned-width", "baseline", pruned_by_width(names, base, costs, target))
    if searched is not None:
        add("searched", "search", list(searched))
    weightings = [("score", score_rows)]
    if alpha_rows is not None:
        weightings.append(("score+alpha", [[s + alpha_weight * a for s, a in zip(sr, ar)] for sr, ar in zip(score_rows, alpha_rows)]))
    for origin, rows in weightings:
        for penalty in change_penalties:
            penalised = [[s - (penalty if n != kept else 0.0) for s, n in zip(row, name_row)] for row, name_row, kept in zip(rows, names, base)]
            add(f"{origin}-p{penalty:g}", origin, _choose(names, penalised, costs, target))
    return pool


def random_under(names: list[list[str]], costs: list[list[float]], target: float, rng) -> list[str]:
    """One op per layer uniformly (``rng.choice``), drawn again until the cost meets ``target``: uniform over the
    architectures within the budget (Li & Talwalkar's random search; ``benchmarks/search_vs_random.py``'s draws)."""
    for _ in range(1_000_000):
        ops = [rng.choice(row) for row in names]
        if cost_of(ops, names, costs) <= target:
            return ops
    raise ValueError(f"no uniform draw met the target {target} in a million tries")


def random_pool(*, names: list[list[str]], base: list[str], costs: list[list[float]], target: float, count: int, seed: int) -> list[Candidate]:
    """``count`` architectures drawn by :func:`random_under` (``random.Random(seed)``), named ``random-N``."""
    import random

    rng = random.Random(seed)
    pool = []
    for number in range(count):
        ops = random_under(names, costs, target, rng)
        pool.append(Candidate(f"random-{number}", "random", ops, cost_of(ops, names, costs), changed_layers(ops, base)))
    return pool
