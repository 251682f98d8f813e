"""Remap a base network's weights into a network of another genotype (the ``netadapt remap`` job)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from netadapt import plugins
from netadapt.genotype import Genotype
from netadapt.remap.driver import RemapReport, remap_network
from netadapt.weights import Weights, build_with_weights


@dataclass
class RemapResult:
    network: nn.Module
    source_genotype: Genotype
    num_classes: int
    report: RemapReport


def remap_base(target: Genotype, *, base_name: str, weights: Weights | None, mode: str = "fna") -> RemapResult:
    """Build ``target`` and fill it from the base network's ``weights`` (``mode``: ``fna`` or ``preserve``,
    :func:`~netadapt.remap.driver.remap_network`).

    ``weights=None`` remaps a randomly initialised base (callers should warn: the result is no
    better than random initialisation). The classifier keeps the source's number of classes.
    """
    base = plugins.bases().get(base_name)
    if weights is None:
        source_genotype = base.base_genotype(width_mult=target.width_mult)
        source = base.build(source_genotype)
    else:
        source, source_genotype = build_with_weights(weights, base_name=base_name)
    num_classes = source.state_dict()[base.classifier_key].shape[0]
    network = base.build(target, num_classes=num_classes)
    report = remap_network(source, network, mode=mode)
    return RemapResult(network, source_genotype, num_classes, report)
