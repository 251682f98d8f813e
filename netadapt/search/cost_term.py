"""The cost term of the α loss (Eq. 3), with or without a hard target (DESIGN §1.6).

Without a target it is the paper's ``λ · log_τ C(α)`` = (λ / ln τ) · ln C(α), C(α) the expected
cost Σ_layers Σ_o softmax(α)_o · cost_o: a constant pressure toward cheaper ops whose outcome in
cost nobody can name in advance.

With a target B it is a Lagrangian term for the constraint ln(C(α) / B) ≤ 0,

    μ · ln(C(α) / B),    μ ← max(0, μ + η · ln(C(α) / B))   after every α step,

with μ starting at the paper's weight λ / ln τ and η = ``search.target_lr`` (dual ascent:
Boyd & Vandenberghe, *Convex Optimization*, §5.5.5; the same multiplier update as constrained
NAS methods that steer a soft cost to a budget). While the expected cost is above B, μ grows
until the cost term outweighs the task loss's pull toward larger ops; once it is below, μ shrinks
and the task loss may spend the slack. The expected cost therefore settles at B when the task
prefers larger ops, and below it when it does not: it is an inequality, as a hard budget is.
We chose this over TuNAS's ``|C/B − 1|`` reward (Bender et al., CVPR 2020), which is an equality
that also pushes a network that is cheap enough toward the budget, and over a fixed λ, which
reaches B only for one λ that depends on the task. The log ratio makes η independent of the
cost's unit and scale (MAdds or milliseconds). The exact guarantee comes from the derive step
(:func:`netadapt.search.budget.constrained_choice`); this term only brings α where the
constrained argmax loses little.
"""

from __future__ import annotations

import math

import torch


class CostTerm:
    """The α loss's cost term; ``update`` after each α step; its state goes into checkpoints."""

    def __init__(self, *, cost_lambda: float, cost_log_base: float, target: float | None = None, target_lr: float = 0.0) -> None:
        self.weight = cost_lambda / math.log(cost_log_base)  # λ · log_τ C = (λ / ln τ) · ln C
        self.target = target
        self.target_lr = target_lr

    def loss(self, expected_cost: torch.Tensor) -> torch.Tensor:
        if self.target is None:
            return self.weight * torch.log(expected_cost)
        return self.weight * torch.log(expected_cost / self.target)

    def update(self, expected_cost: float) -> None:
        """Dual ascent on μ (with a target); nothing without one."""
        if self.target is not None:
            self.weight = max(0.0, self.weight + self.target_lr * math.log(expected_cost / self.target))

    def state_dict(self) -> dict[str, float]:
        return {"weight": self.weight}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.weight = float(state["weight"])
