"""Derive (DESIGN §1.3, step 3): every searched layer keeps its argmax op; skips are removed."""

from __future__ import annotations

from netadapt.genotype import Genotype, parse_op
from netadapt.search.supernet import SearchedLayer


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
