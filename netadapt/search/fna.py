"""The ``fna`` strategy: the search loop of FNA's public code (DESIGN §1.5; JaminFong/FNA, ``fna_det``).

- **Weight steps train one path.** Every layer runs one candidate drawn from softmax(α / T) with
  weight 1 (the others do not run), so a weight step costs one network. Before α updates start, α
  is still at its initialisation (1e-3 · randn), so the draw is uniform up to 1e-3, as FNA's
  uniform sampling before its ``arch_update_epoch`` is.
- **α steps run every candidate** weighted by softmax(α / T) (Eq. 3 as the ``darts`` strategy
  computes it); FNA's config uses T = 0.9 (``search.alpha_temperature``).
- **Five weight steps per α step** (FNA's workflow ``[('arch', 1), ('train', 5)]``):
  ``weight_steps_per_alpha_step``, changed with ``search.strategy_options: {weight_steps_per_alpha_step: N}``.
- FNA clips the α gradient at norm 35 (``search.alpha_grad_clip``, set in ``coco_fna_code.yaml``).
- ``weight_paths: uniform`` (not FNA's) draws the weight steps' path uniformly for the whole search, as
  single-path one-shot NAS trains its super network (Guo et al., ECCV 2020; FairNAS, Chu et al. 2021): every
  candidate gets the same share of weight training, so an α step compares candidates trained alike. FNA's
  draw from softmax(α / T) trains the leading candidate more the sharper α gets (T annealed to 0.2 draws it
  almost always), which feeds its lead back into the loss that α follows. Measured on the demo (one seed of
  ``search_vs_random.py``): the derived network trained to 6.3 mAP (FNA's draw: 5.2 ± 1.0 over 3 seeds, random
  7.0 ± 1.8), with the same kind of architecture (10 narrower layers, 8 other kernels): no evidence either way.

Sampling with weight exactly 1 on one candidate lets :class:`~netadapt.search.supernet.MixedOp`
run that candidate alone; the draw uses the search's per-rank generator (saved in checkpoints),
so a resumed run samples what the uninterrupted one did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from netadapt.errors import ConfigError
from netadapt.hookspecs import hookimpl
from netadapt.search.supernet import ArchitectureParameters


class FnaStrategy:
    name = "fna"
    # DistributedDataParallel: unsampled candidates take no part in a weight step (find_unused_parameters).
    uses_all_parameters = False

    WEIGHT_PATHS = ("alpha", "uniform")
    options = {"weight_steps_per_alpha_step": 5, "weight_paths": "alpha"}  # search.strategy_options: name → default

    def __init__(self, weight_steps_per_alpha_step: int = options["weight_steps_per_alpha_step"], weight_paths: str = options["weight_paths"]) -> None:
        if isinstance(weight_steps_per_alpha_step, bool) or not isinstance(weight_steps_per_alpha_step, int) or weight_steps_per_alpha_step < 1:
            raise ConfigError(f"search.strategy_options.weight_steps_per_alpha_step must be a positive integer, got {weight_steps_per_alpha_step!r}")
        if weight_paths not in self.WEIGHT_PATHS:
            raise ConfigError(f"search.strategy_options.weight_paths must be one of {', '.join(self.WEIGHT_PATHS)}, got {weight_paths!r}")
        self.weight_steps_per_alpha_step = weight_steps_per_alpha_step
        self.weight_paths = weight_paths

    def for_config(self, config: Any) -> FnaStrategy:
        """This strategy with the run's ``search.strategy_options``."""
        options: Mapping[str, Any] = config.strategy_options
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ConfigError(f"search.strategy_options.{unknown[0]}: unknown option of strategy 'fna' (known: {', '.join(self.options)})")
        return FnaStrategy(**options)

    def weight_step_weights(self, arch: ArchitectureParameters, *, temperature: float, generator: torch.Generator) -> list[torch.Tensor]:
        with torch.no_grad():
            weights = []
            for probabilities in arch.probabilities(temperature=temperature):
                if self.weight_paths == "uniform":
                    probabilities = torch.ones_like(probabilities)
                chosen = torch.multinomial(probabilities.cpu(), 1, generator=generator).item()
                weights.append(torch.zeros_like(probabilities).index_fill_(0, torch.tensor([chosen], device=probabilities.device), 1.0))
            return weights

    def alpha_step_weights(self, arch: ArchitectureParameters, *, temperature: float, generator: torch.Generator) -> list[torch.Tensor]:
        return arch.probabilities(temperature=temperature)


@hookimpl
def register_strategies(register) -> None:
    register(FnaStrategy.name, FnaStrategy())
