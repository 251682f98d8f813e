"""What the benchmarks share: exact tests for small designs (DESIGN §1.6: with n seeds per arm, exact tests bound what
can be shown) and rank correlations. Each test is one-sided and exact: it enumerates every sign pattern, split or
order, so its p is exact and its smallest reachable value is known (2⁻ⁿ, 1 / C(n+m, n), 1 / n!)."""

from __future__ import annotations

import itertools
import math
import statistics


def sign_flip_p(differences: list[float]) -> float:
    """One-sided exact p of mean(d) ≥ observed under random signs (2ⁿ patterns; zeros stay zero)."""
    observed = statistics.fmean(differences)
    patterns = list(itertools.product((1, -1), repeat=len(differences)))
    return sum(statistics.fmean(s * d for s, d in zip(signs, differences)) >= observed - 1e-12 for signs in patterns) / len(patterns)


def mann_whitney_p(x: list[float], y: list[float]) -> float:
    """One-sided exact p of U(x > y) ≥ observed over all splits of the pooled values (ties count ½)."""

    def u(a, b):
        return sum(1.0 if i > j else 0.5 if i == j else 0.0 for i in a for j in b)

    pooled, observed = x + y, u(x, y)
    splits = list(itertools.combinations(range(len(pooled)), len(x)))
    hits = 0
    for chosen in splits:
        rest = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        hits += u([pooled[i] for i in chosen], rest) >= observed - 1e-12
    return hits / len(splits)


def holm(ps: dict[str, float]) -> dict[str, float]:
    ordered = sorted(ps.items(), key=lambda item: item[1])
    adjusted, running = {}, 0.0
    for rank, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - rank) * p))
        adjusted[name] = running
    return adjusted


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's τ-b: Σ_{i<j} sign(Δx)·sign(Δy) / √(pairs not tied in x · pairs not tied in y)."""
    pairs = list(itertools.combinations(range(len(x)), 2))
    sign = lambda v: (v > 0) - (v < 0)  # noqa: E731
    score = sum(sign(x[i] - x[j]) * sign(y[i] - y[j]) for i, j in pairs)
    untied_x = sum(x[i] != x[j] for i, j in pairs)
    untied_y = sum(y[i] != y[j] for i, j in pairs)
    return score / math.sqrt(untied_x * untied_y) if untied_x and untied_y else math.nan


def spearman_rho(x: list[float], y: list[float]) -> float:
    """Spearman's ρ: Pearson's correlation of the ranks (ties get their average rank)."""
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    covariance = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    spread = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return covariance / spread if spread else math.nan


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def permutation_p(x: list[float], y: list[float]) -> float:
    """One-sided exact p of τ-b ≥ the observed one over every order of ``y``."""
    observed = kendall_tau(x, y)
    orders = list(itertools.permutations(y))
    return sum(kendall_tau(x, list(order)) >= observed - 1e-12 for order in orders) / len(orders)
