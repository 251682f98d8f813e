"""α's starting point at the base network (``search.base_prior``).

FNA starts α at 1e-3 · randn: softmax(α) is uniform and the search, though it inherits the base's weights,
starts as far from the base's architecture as from any other. Network adaptation can instead start *at* the
base: every searched layer's α gives the base's op (``skip`` where the super network is deeper than the base,
:func:`~netadapt.search.budget.base_ops`) the probability p, the other candidates (1 − p) / (n − 1) each:

    α_base += ln(p · (n − 1) / (1 − p)),

so that softmax(α)_base = p (up to the 1e-3 noise). The α steps then move away from the base where the task loss
and the cost term say so. Under ``fna`` the weight steps draw their paths from softmax(α / T), so the base's
ops also get the larger share of weight training until α leaves them.

Why: on the demo (224², 12-epoch stand-alone trainings from the remapped base) trained mAP falls with every
layer that remapping changes — inserted (Spearman ρ −0.76 with their count), other kernel (ρ −0.67), narrower
(ρ −0.61) — over 21 trained networks (``benchmarks/trained_vs_structure.py``), and the base pruned by depth alone
trains to 13.9 mAP at 0.7x where random architectures reach 7.0 ± 1.8; a uniform start let the search fill the
budget with changed layers (1–4 of 20 layers at the base's op). Measured (``search_vs_random.py``, 3 seeds each):
p = 0.5 keeps 9–10 layers at the base's op and trains to 7.7 ± 1.5 mAP, p = 0.9 4–11 layers and 8.4 ± 2.5 —
above the uniform start's 5.2 ± 1.0 but within noise of random, and far from the pruned base: α's steps (Adam,
lr 0.5) still follow the super network's loss, which prefers capacity. Off by default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from netadapt.errors import ConfigError
from netadapt.genotype import Genotype
from netadapt.search.budget import base_ops
from netadapt.search.supernet import ArchitectureParameters, SearchedLayer


def prior_ops(base_genotype: Genotype, layers: Sequence[SearchedLayer]) -> list[str]:
    """The base's op of every searched layer; one ``ConfigError`` line when one is no candidate (MobileNetV3's in ``fna``)."""
    ops = base_ops(base_genotype, layers)
    if ops is None:
        raise ConfigError(
            f"search.base_prior: the base network {base_genotype.base!r} has an op that is no candidate of the search space "
            "in some searched layer, so α cannot start at it (set search.base_prior: 0)"
        )
    return ops


def apply_base_prior(arch: ArchitectureParameters, layers: Sequence[SearchedLayer], base_genotype: Genotype, probability: float) -> None:
    """Raise every layer's α of the base's op so that softmax(α) gives it ``probability`` (module docstring)."""
    if probability <= 0:
        return
    with torch.no_grad():
        for alpha, names, op in zip(arch.alphas, arch.candidate_names, prior_ops(base_genotype, layers), strict=True):
            others = len(names) - 1
            if others:
                alpha[names.index(op)] += math.log(probability * others / (1 - probability))
