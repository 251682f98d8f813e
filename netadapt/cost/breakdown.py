"""A network's parameters and MAdds per layer, per stage and in total (``netadapt cost``/``show``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from netadapt import plugins
from netadapt.contracts import LayerPath, check_network, module_paths
from netadapt.cost import Cost
from netadapt.cost.footprint import check_memory, genotype_footprint
from netadapt.genotype import Genotype


@dataclass
class PartCost:
    """One row: a genotype layer, a stage, or a part outside the stages (stem, head, classifier)."""

    label: str
    params: float
    madds: float
    stage: int | None = None  # 1-based
    layer: int | None = None  # 1-based
    op: str | None = None
    c_in: int | None = None  # actual channels, as built (the genotype's are nominal: width_mult scales them)
    c_out: int | None = None
    stride: int | None = None


@dataclass
class CostBreakdown:
    input_size: int
    layers: list[PartCost]
    stages: list[PartCost]
    others: list[PartCost]
    total_params: float
    total_madds: float
    num_classes: int
    left_out: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        rows = lambda parts: [part.__dict__ for part in parts]  # noqa: E731
        return {
            "input_size": self.input_size,
            "params": self.total_params,
            "madds": self.total_madds,
            "classifier_counted": True,
            "num_classes": self.num_classes,
            "stages": rows(self.stages),
            "others": rows(self.others),
            "layers": rows(self.layers),
            "left_out": self.left_out,
        }


def genotype_cost(genotype: Genotype, *, input_size: int | None = None, num_classes: int = 1000, where: str = "genotype") -> CostBreakdown:
    """Build the genotype's classifier network (random weights) and count it; one that would not fit in memory is
    refused before it is built (``where`` names the file)."""
    size = input_size or genotype.input_size
    footprint = genotype_footprint(genotype, input_size=size, num_classes=num_classes)
    check_memory(footprint.bytes(), what=f"{where}: its network of {num_classes} classes at input {size}×{size} ({footprint.parameters:,} parameters)")
    base = plugins.bases().get(genotype.base)
    network = base.build(genotype, num_classes=num_classes)
    return network_cost(network, genotype, input_size=input_size or genotype.input_size, num_classes=num_classes)


def network_cost(network: nn.Module, genotype: Genotype, *, input_size: int, num_classes: int) -> CostBreakdown:
    """Count ``network`` (a :class:`~netadapt.contracts.Network` built from ``genotype``) on one input image;
    a layer or part of several modules counts all of them."""
    check_network(network)
    inputs = (torch.zeros(1, 3, input_size, input_size),)
    params = plugins.cost_models().get("params").measure(network, inputs)
    madds = plugins.cost_models().get("madds").measure(network, inputs)
    channels = built_channels(network, inputs)
    layers: list[PartCost] = []
    stages: list[PartCost] = []
    for s, (stage, paths) in enumerate(zip(genotype.stages, network.layer_paths), start=1):
        stage_layers = []
        for i, (op, path) in enumerate(zip(stage.ops, paths), start=1):
            nominal_in = stage.c_in if i == 1 else stage.c_out
            c_in, c_out = channels.get((s - 1, i - 1), (None, None))
            stage_layers.append(
                PartCost(
                    label=f"stage {s} layer {i}",
                    params=_of(params, path),
                    madds=_of(madds, path),
                    stage=s,
                    layer=i,
                    op=op.name,
                    # a skip keeps the previous layer's channels; a layer whose output is no tensor: the genotype's
                    c_in=c_in or (stage_layers[-1].c_out if stage_layers else nominal_in),
                    c_out=c_out or (stage_layers[-1].c_out if stage_layers else stage.c_out),
                    stride=stage.stride if i == 1 else 1,
                )
            )
        layers += stage_layers
        stages.append(
            PartCost(
                label=f"stage {s}",
                params=sum(layer.params for layer in stage_layers),
                madds=sum(layer.madds for layer in stage_layers),
                stage=s,
                op=" ".join(stage.to_list()[1]),
                c_in=stage_layers[0].c_in,
                c_out=stage_layers[-1].c_out,
                stride=stage.stride,
            )
        )
    others = [PartCost(label=label, params=_of(params, path), madds=_of(madds, path)) for label, path in network.part_paths.items()]
    return CostBreakdown(
        input_size=input_size,
        layers=layers,
        stages=stages,
        others=others,
        total_params=params.total,
        total_madds=madds.total,
        num_classes=num_classes,
        left_out=madds.left_out,
    )


def built_channels(network: nn.Module, inputs: tuple[torch.Tensor, ...]) -> dict[tuple[int, int], tuple[int, int]]:
    """(stage index, layer index) → (input, output) channels of every layer that is not ``skip``, as the network has
    them (after ``width_mult``), seen in one forward pass: the input of a layer's first module, the output of its last."""
    seen: dict[tuple[int, int], list[int]] = {}
    handles = []

    def record(key: tuple[int, int], slot: int, tensor: object) -> None:
        if isinstance(tensor, torch.Tensor) and tensor.dim() > 1:
            seen.setdefault(key, [0, 0])[slot] = tensor.shape[1]

    for s, paths in enumerate(network.layer_paths):
        for i, path in enumerate(paths):
            modules = module_paths(path)
            if modules:
                first, last = network.get_submodule(modules[0]), network.get_submodule(modules[-1])
                handles.append(first.register_forward_pre_hook(lambda _, args, key=(s, i): record(key, 0, args[0] if args else None)))
                handles.append(last.register_forward_hook(lambda _, args, output, key=(s, i): record(key, 1, output)))
    training = network.training
    try:
        with torch.no_grad():
            network.eval()(*inputs)
    finally:
        network.train(training)
        for handle in handles:
            handle.remove()
    return {key: (c_in, c_out) for key, (c_in, c_out) in seen.items()}


def _of(cost: Cost, path: LayerPath) -> float:
    """The cost of one layer or part: the sum over its modules (0 for ``skip``)."""
    return sum(cost.of(module) for module in module_paths(path))
