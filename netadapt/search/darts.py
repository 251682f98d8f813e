"""The ``darts`` strategy: first-order DARTS (Liu et al., ICLR 2019) as the paper uses it (Eq. 3).

Both steps run every candidate of every layer, weighted by softmax(α / T): the weight step with
the weights detached from α, the α step differentiably. Alternating the two on disjoint halves of
the training set, with the α gradient of the current weights only, is the first-order
approximation (no unrolled weight step).
"""

from __future__ import annotations

import torch

from netadapt.hookspecs import hookimpl
from netadapt.search.supernet import ArchitectureParameters


class DartsStrategy:
    name = "darts"
    # DistributedDataParallel: every candidate runs in every step, so no parameter goes unused.
    uses_all_parameters = True

    def weight_step_weights(self, arch: ArchitectureParameters, *, temperature: float, generator: torch.Generator) -> list[torch.Tensor]:
        with torch.no_grad():
            return arch.probabilities(temperature=temperature)

    def alpha_step_weights(self, arch: ArchitectureParameters, *, temperature: float, generator: torch.Generator) -> list[torch.Tensor]:
        return arch.probabilities(temperature=temperature)


@hookimpl
def register_strategies(register) -> None:
    register(DartsStrategy.name, DartsStrategy())
