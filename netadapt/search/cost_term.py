"""The cost term of the α loss (Eq. 3), with or without a hard target (DESIGN §1.6).

Without a target it is the paper's ``λ · log_τ C(α)`` = (λ / ln τ) · ln C(α), C(α) the expected
cost Σ_layers Σ_o softmax(α)_o · cost_o: a constant pressure toward cheaper ops whose outcome in
cost nobody can name in advance.

With a target B it is TuNAS's absolute cost reward (Bender et al., "Can weight sharing outperform
random architecture search?", CVPR 2020, Eq. 2: β · |C/B − 1|) on the log ratio,

    w · |ln(C(α) / B)|,    w = ``search.target_weight``,

whose gradient points to cheaper ops while C > B and to dearer ones while C < B, with the same
strength on both sides: the expected cost is steered *to* B and held there, and the task loss
decides which layers spend the budget. The log ratio makes w independent of the cost's unit and
scale (MAdds or milliseconds). Two reasons for this choice, the second measured:

- a network far below the budget wastes it, and a super network that drifts there is the skip
  collapse FNA's users met (its issue #15); the absolute term pushes back up;
- a Lagrange multiplier updated by dual ascent (μ · ln(C/B), μ ← max(0, μ + η · ln(C/B))), which
  we tried first, overshoots under Adam: μ keeps growing while C > B, so when C reaches B it is at
  its largest and keeps pushing for as long as it takes to decay. On the demo (``fna`` strategy,
  α lr 0.1, η 0.5, B = 84M MAdds) the expected cost went 134M → 46M in 14 α steps and the super
  network collapsed to ``skip`` in 12 of its 15 shape-keeping layers.

The exact guarantee comes from the derive step (:func:`netadapt.search.budget.constrained_choice`);
this term brings α where the constrained choice loses little.
"""

from __future__ import annotations

import math

import torch


class CostTerm:
    """The α loss's cost term: the paper's soft term, or TuNAS's absolute term with a target."""

    def __init__(self, *, cost_lambda: float, cost_log_base: float, target: float | None = None, target_weight: float = 1.0) -> None:
        self.target = target
        # λ · log_τ C = (λ / ln τ) · ln C
        self.weight = cost_lambda / math.log(cost_log_base) if target is None else target_weight

    def loss(self, expected_cost: torch.Tensor) -> torch.Tensor:
        if self.target is None:
            return self.weight * torch.log(expected_cost)
        return self.weight * torch.log(expected_cost / self.target).abs()
