"""What the benchmarks share: exact tests for small designs (DESIGN §1.6: with n seeds per arm, exact tests bound what
can be shown) and rank correlations. Each test is one-sided and exact: it enumerates every sign pattern, split or
order, so its p is exact and its smallest reachable value is known (2⁻ⁿ, 1 / C(n+m, n), 1 / n!)."""

from __future__ import annotations

import itertools
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


def kendall_tau_b(x: list[float], y: list[float]) -> float:
    concordant = discordant = ties_x = ties_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = x[i] - x[j], y[i] - y[j]
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            ties_x += 1
        elif dy == 0:
            ties_y += 1
        elif dx * dy > 0:
            concordant += 1
        else:
            discordant += 1
    denominator = ((concordant + discordant + ties_x) * (concordant + discordant + ties_y)) ** 0.5
    return (concordant - discordant) / denominator if denominator else float("nan")


def spearman(x: list[float], y: list[float]) -> float:
    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        result = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                result[order[k]] = (i + j) / 2
            i = j + 1
        return result

    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    return cov / (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5


def permutation_p(x: list[float], y: list[float]) -> float:
    """One-sided exact p of τ-b ≥ the observed one over every order of ``y``."""
    observed = kendall_tau_b(x, y)
    orders = list(itertools.permutations(y))
    return sum(kendall_tau_b(x, list(order)) >= observed - 1e-12 for order in orders) / len(orders)
