"""Derive (DESIGN §1.3, step 3): every searched layer keeps its argmax op, or, under a hard target, the
ops of the exact constrained choice (DESIGN §1.6); skips are removed."""

from __future__ import annotations

import torch

from netadapt.genotype import Genotype, parse_op
from netadapt.search.budget import constrained_choice
from netadapt.search.cost_table import CostTable
from netadapt.search.supernet import ArchitectureParameters, SearchedLayer


def choose_ops(arch: ArchitectureParameters, table: CostTable, target: float | None) -> list[str]:
    """One op per searched layer: the argmax of α; with ``target``, the choice maximising Σ log softmax(α)
    whose Σ of table costs is at most ``target`` (:func:`~netadapt.search.budget.constrained_choice`)."""
    if target is None:
        return arch.best_ops()
    scores = [torch.log_softmax(alpha.detach().double().cpu(), dim=0).tolist() for alpha in arch.alphas]
    costs = [[layer[name] for name in names] for layer, names in zip(table.costs, arch.candidate_names, strict=True)]
    chosen = constrained_choice(scores, costs, target)
    return [names[i] for names, i in zip(arch.candidate_names, chosen)]


def decision_summary(arch: ArchitectureParameters, *, temperature: float = 1.0) -> dict[str, float]:
    """How decided α is, over the searched layers: the mean top-1 probability of softmax(α) and the mean gap
    between the first and the second op, the uniform top-1 for comparison (1 / candidates, averaged), and
    the mean top-1 of softmax(α / T) at the search's final temperature ``T``."""

    def top(t: float) -> list[torch.Tensor]:
        return [p.detach().cpu().topk(2).values for p in arch.probabilities(temperature=t)]

    at_one, count = top(1.0), len(arch.alphas)
    return {
        "top1_mean": sum(float(t[0]) for t in at_one) / count,
        "gap_mean": sum(float(t[0] - t[1]) for t in at_one) / count,
        "uniform_top1_mean": sum(1 / alpha.numel() for alpha in arch.alphas) / count,
        "final_temperature": temperature,
        "top1_mean_at_final_temperature": sum(float(t[0]) for t in top(temperature)) / count,
    }


def derive_genotype(skeleton: Genotype, layers: list[SearchedLayer], best_ops: list[str], *, space_name: str) -> Genotype:
    """The skeleton with each searched layer's chosen op; ``skip`` layers dropped (the stage is shallower).

    The super network's depths and the space are recorded in the genotype's metadata.
    """
    chosen = {(layer.stage, layer.layer): parse_op(name) for layer, name in zip(layers, best_ops, strict=True)}
    ops_per_stage = []
    for s, stage in enumerate(skeleton.stages):
        ops = [chosen.get((s, i), op) for i, op in enumerate(stage.ops)]
        ops_per_stage.append([op for op in ops if not op.is_skip])
    genotype = skeleton.with_ops(ops_per_stage)
    genotype.extra.update({"search_space": space_name, "super_depths": [len(stage.ops) for stage in skeleton.stages]})
    return genotype
