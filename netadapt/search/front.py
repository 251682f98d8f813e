"""One search, a whole family (DESIGN §1.6): the accuracy-vs-cost front of a finished search.

For each target the exact constrained derive (:func:`~netadapt.search.derive.choose_ops`: Σ log
softmax(α) maximised subject to Σ table cost ≤ target) picks one op per searched layer. Each
architecture is then scored with the super network's own weights, inherited and not retrained, as
SPOS and OFA score sub-networks:

1. the super network runs that path alone (one-hot op weights: each :class:`MixedOp` runs one candidate);
2. BatchNorm statistics, which the search accumulated under the mixture of paths, are re-estimated
   for that path on training images of the weight half (``split.json``);
3. COCOeval scores the detector on the α half of the training set — images the weights never trained
   on — or on the val split (``evaluate_on="val"``); the detector's training loss on the same images is
   kept too (``proxy_loss``): a super network trained briefly (the demo's search) scores every path near
   mAP 0, where the loss still tells them apart. Optionally (``finetune_steps``) each path is first trained
   alone for a few steps on the weight half (undone before the next path).

This *proxy* is cheap (a few forward passes per point) but is only a proxy:
``benchmarks/front_proxy.py`` measures how well it ranks architectures against stand-alone training.

A finished search directory holds what is needed: ``supernet.pth`` (base, detector, space, skeleton,
α, cost table, the detector's weights), ``split.json`` (the two halves' image ids) and the search's
config (``supernet.pth`` or the final ``last.pth``). The dataset is not recorded: pass the one the
search ran on (a mismatch of image ids or classes is an error).

The plan (the search decoded, its targets resolved, the constrained derive) is :mod:`~netadapt.search.front_plan`, the
proxy :mod:`~netadapt.search.front_score`, the files :mod:`~netadapt.search.front_write`; this module joins them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from netadapt.cost import cost_model_for
from netadapt.data.sources import DataSplit
from netadapt.search.cost_table import derived_cost
from netadapt.search.front_plan import DEFAULT_POINTS, MAX_POINTS, FinishedSearch, FrontPoint, load_search, plan_front, resolve_targets
from netadapt.search.front_score import EVALUATE_ON, InheritedScorer
from netadapt.search.front_write import CSV_FIELDS, Front, draw_front, front_outputs, write_front

__all__ = [  # compute_front, and the names the CLI, jobs and benchmarks import from here
    "CSV_FIELDS", "DEFAULT_POINTS", "EVALUATE_ON", "MAX_POINTS", "FinishedSearch", "Front", "FrontPoint", "InheritedScorer",
    "compute_front", "draw_front", "front_outputs", "load_search", "plan_front", "resolve_targets", "write_front",
]


def compute_front(
    search: FinishedSearch, targets: list[tuple[str, float]], splits: dict[str, DataSplit], *, evaluate_on: str = "alpha",
    bn_images: int = 256, device: torch.device | str = "cpu", finetune_steps: int = 0, announce: Callable[[FrontPoint], None] | None = None,
) -> Front:
    """Every target's architecture (and the base network's, when the space holds it): costs, parameters, proxy mAP.

    A choice of ops met at several targets is scored once.
    """
    from netadapt.detectors.model import DetectorSpec, build_detector, options_from_config

    points = plan_front(search, targets)
    base = None
    if search.base_ops is not None:
        base = FrontPoint("base", None, None, search.base_ops, search.genotype(search.base_ops))
    scorer = InheritedScorer(search, splits, evaluate_on=evaluate_on, bn_images=bn_images, batch_size=search.config.batch_size, device=device,
                            finetune_steps=finetune_steps)
    cost_model = cost_model_for(search.config)
    class_names = scorer.bn_set.class_names
    scores: dict[tuple[str, ...], dict[str, float]] = {}
    scope = ""
    for point in ([base] if base is not None else []) + points:
        cost = derived_cost(point.genotype, search.table, point.ops, space=search.space, cost_model=cost_model)
        point.predicted, point.measured, scope = cost.predicted, cost.measured, cost.scope
        spec = DetectorSpec(search.detector, search.base, point.genotype, class_names, search.config.input_size,
                            options_from_config(search.detector, search.config))
        point.params = sum(parameter.numel() for parameter in build_detector(spec).parameters())
        key = tuple(point.ops)
        if key not in scores:
            scores[key] = scorer.score(point.ops)
        point.metrics = scores[key]
        if announce is not None:
            announce(point)
    return Front(search, points, base, scorer.evaluated_on, len(scorer.bn_indices), scope, finetune_steps)

