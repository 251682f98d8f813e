"""The super network (DESIGN §1.3, step 1) and its architecture parameters α.

The base network is expanded to the search space's depths; every searched layer becomes a
:class:`MixedOp` over the space's candidates whose output is Σ_o w_o · o(x) (Eq. 3), with
``w = softmax(α)`` in the DARTS strategy. Every candidate's weights are remapped from the base
network (Section 2.1): for each candidate op ``o`` a network with ``o`` on every searched layer
is built and filled by :func:`netadapt.remap.remap_network` (depth Eq. 1, kernel Eq. 2, width),
and its blocks become the candidates ``o`` of the mixed ops (where layers have candidates of
their own, network j holds every layer's j-th candidate, :func:`choice_genotype`). Each candidate keeps its own
remapped BatchNorm, so with one-hot weights on the base's ops (and ``skip`` where the base is
shallower) the super network computes exactly what the base network does.

The super network is a base network to detectors: ``forward_taps`` and ``tap_channels`` work as
on the plain network. When the stride-16 tap falls on a mixed op, the tap is Σ_o w_o · e_o(x)
over the candidates' expansion outputs, zero-padded to the widest (the tap follows the
architecture; FNA's code pins that layer to e6 instead).

α lives apart from the network (:class:`ArchitectureParameters`) so that weights and α have
their own optimisers and DDP synchronises only the weights; the strategy computes the op
weights from α and hands them to the network with :meth:`SuperNetwork.set_op_weights`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from netadapt import plugins
from netadapt.contracts import GUIDE, TapBlock
from netadapt.errors import PluginError
from netadapt.genotype import Genotype, Op
from netadapt.remap import remap_network
from netadapt.search.space import SearchSpace


class OpModules(nn.ModuleDict):
    """Candidate blocks by op name. A module name cannot hold ``.``, which a fractional expansion
    has (``k3_e0.5``, ``k3_e2.5_hs``): it is stored as ``-`` (state-dict keys ``candidates.k3_e0-5.*``)
    and every name read back is the op's own."""

    def __init__(self, modules: dict[str, nn.Module]) -> None:
        super().__init__({name.replace(".", "-"): module for name, module in modules.items()})

    def __getitem__(self, name: str) -> nn.Module:
        return super().__getitem__(name.replace(".", "-"))

    def keys(self) -> list[str]:
        return [key.replace("-", ".") for key in self._modules]

    def items(self) -> list[tuple[str, nn.Module]]:
        return list(zip(self.keys(), self._modules.values()))

    def __iter__(self):
        return iter(self.keys())


class MixedOp(nn.Module):
    """Eq. 3: Σ_o w_o · o(x) over candidate blocks (``skip`` is ``nn.Identity``).

    A candidate whose weight is exactly zero adds nothing to the sum and is not run: with a
    one-hot (or k-hot) weight vector, as the ``sampled`` strategy gives, one step costs the
    compute and memory of one network. A weight that is numerically zero but carries a gradient
    (a straight-through sample: ``0 - soft.detach() + soft``) is skipped too; it then gets no
    gradient from the task loss, which is what the ``sampled`` strategy's estimator defines
    (:mod:`netadapt.search.sampled`). Softmax weights (``darts``) are not zero (float32
    underflows only at α gaps of about 100·T), so every candidate runs: Eq. 3 as it stands.
    Which candidates run is read from the weights once, when they are set, so the forward pass
    never waits on the device.
    """

    def __init__(self, candidates: dict[str, nn.Module]) -> None:
        super().__init__()
        self.candidates = OpModules(candidates)
        self._op_weights: torch.Tensor | None = None
        self._active: tuple[int, ...] = ()  # indices of the candidates with a non-zero weight
        self._alone = False  # one candidate, weight exactly 1 and no gradient: its output as it is

    @property
    def names(self) -> list[str]:
        return list(self.candidates)

    @property
    def hidden_channels(self) -> int:
        """The widest candidate's expansion width (the stride-16 tap's channels)."""
        return max(op.hidden_channels if isinstance(op, TapBlock) else 0 for op in self.candidates.values())

    @property
    def op_weights(self) -> torch.Tensor | None:
        return self._op_weights

    @op_weights.setter
    def op_weights(self, weights: torch.Tensor | None) -> None:
        active: tuple[int, ...] = ()
        alone = False
        if weights is not None:
            if weights.shape != (len(self.candidates),):
                raise ValueError(f"MixedOp over {len(self.candidates)} candidates got op weights of shape {tuple(weights.shape)}")
            values = weights.detach().tolist()
            active = tuple(i for i, value in enumerate(values) if value != 0)
            if not active:
                raise ValueError(f"MixedOp over {', '.join(self.candidates)}: every op weight is zero")
            alone = len(active) == 1 and values[active[0]] == 1 and not weights.requires_grad
        self._op_weights, self._active, self._alone = weights, active, alone

    def _weights(self) -> torch.Tensor:
        if self._op_weights is None:
            raise RuntimeError("MixedOp has no op weights: call SuperNetwork.set_op_weights first")
        return self._op_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights, ops = self._weights(), list(self.candidates.values())
        if self._alone:
            return ops[self._active[0]](x)
        out = None
        for i in self._active:
            term = weights[i] * ops[i](x)
            out = term if out is None else out + term
        return out

    def forward_with_expansion(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The output and Σ_o w_o · e_o(x) over the expansion outputs, zero-padded to the widest."""
        weights, ops = self._weights(), list(self.candidates.values())
        width = self.hidden_channels
        out = expanded = None
        for i in self._active:
            op_out, op_expanded = ops[i].forward_with_expansion(x)
            if not self._alone:
                op_out, op_expanded = weights[i] * op_out, weights[i] * op_expanded
            padding = width - op_expanded.shape[1]
            if padding:
                op_expanded = nn.functional.pad(op_expanded, (0, 0, 0, 0, 0, padding))
            out = op_out if out is None else out + op_out
            expanded = op_expanded if expanded is None else expanded + op_expanded
        return out, expanded


@dataclass(frozen=True)
class SearchedLayer:
    """One searched layer: its place in the genotype and in the network, and its candidates."""

    stage: int  # 0-based
    layer: int  # 0-based
    path: str
    candidates: tuple[Op, ...]


class SuperNetwork(nn.Module):
    """A base-family network whose searched layers are mixed ops (see the module docstring)."""

    def __init__(self, network: nn.Module, layers: list[SearchedLayer], *, base: str, space: SearchSpace, skeleton: Genotype) -> None:
        super().__init__()
        self.network = network
        self.layers = layers
        self.base, self.space, self.skeleton = base, space, skeleton

    @property
    def mixed_ops(self) -> list[MixedOp]:
        return [self.network.get_submodule(layer.path) for layer in self.layers]

    @property
    def tap_channels(self) -> dict[str, int]:
        return self.network.tap_channels

    def set_op_weights(self, weights: list[torch.Tensor]) -> None:
        for mixed, layer_weights in zip(self.mixed_ops, weights, strict=True):
            mixed.op_weights = layer_weights

    def forward_taps(self, x: torch.Tensor):
        return self.network.forward_taps(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


class ArchitectureParameters(nn.Module):
    """α: one vector per searched layer, one entry per candidate (FNA's code: 1e-3 · randn)."""

    def __init__(self, layers: list[SearchedLayer], *, init_std: float = 1e-3, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.alphas = nn.ParameterList(
            nn.Parameter(init_std * torch.randn(len(layer.candidates), generator=generator)) for layer in layers
        )
        self.candidate_names = [[op.name for op in layer.candidates] for layer in layers]

    def probabilities(self, *, temperature: float = 1.0) -> list[torch.Tensor]:
        """softmax(α / T) per layer (differentiable)."""
        return [torch.softmax(alpha / temperature, dim=0) for alpha in self.alphas]

    def best_ops(self) -> list[str]:
        """The argmax op of every searched layer (DESIGN §1.3, step 3)."""
        return [names[int(alpha.argmax())] for names, alpha in zip(self.candidate_names, self.alphas)]


def skeleton_genotype(base_genotype: Genotype, space: SearchSpace, op: Op | None = None) -> Genotype:
    """The base expanded to the space's depths: fixed stages repeat their last base op (Eq. 1),
    searched stages hold ``op`` on every layer (or the base's ops, repeated, when ``op`` is None)."""
    space.check_against(base_genotype, source=f"search space {space.name!r}")
    ops_per_stage = []
    for s, (stage, depth) in enumerate(zip(base_genotype.stages, space.depths)):
        real = [o for o in stage.ops if not o.is_skip]
        if op is not None and space.is_searched(s):
            ops_per_stage.append([op] * depth)
        else:
            ops_per_stage.append([real[min(i, len(real) - 1)] for i in range(depth)])
    return base_genotype.with_ops(ops_per_stage)


def choice_genotype(skeleton: Genotype, space: SearchSpace, choice: int) -> Genotype | None:
    """The skeleton with every searched layer's ``choice``-th candidate (0-based); a layer whose
    ``choice``-th candidate is ``skip``, or that has fewer, keeps its op. ``None`` if no layer changes."""
    ops_per_stage, changed = [], False
    for s, stage in enumerate(skeleton.stages):
        ops = list(stage.ops)
        for i in range(len(ops) if space.is_searched(s) else 0):
            candidates = space.layer_candidates(s, i)
            if choice < len(candidates) and not candidates[choice].is_skip:
                ops[i], changed = candidates[choice], True
        ops_per_stage.append(ops)
    return skeleton.with_ops(ops_per_stage) if changed else None


def build_supernet(base_name: str, space: SearchSpace, source: nn.Module, source_genotype: Genotype) -> SuperNetwork:
    """The super network of ``space`` with every candidate remapped from ``source``.

    ``source`` is the base network built from ``source_genotype`` and holding its weights.
    """
    base = plugins.bases().get(base_name)
    skeleton = skeleton_genotype(source_genotype, space)
    searched = [(s, i) for s, stage in enumerate(skeleton.stages) if space.is_searched(s) for i in range(len(stage.ops))]
    # Network j holds every searched layer's j-th candidate (one network per op when all layers
    # share the candidates, as in ``fna``); its blocks become the mixed ops' candidates.
    choices: list[nn.Module | None] = []
    for choice in range(max((len(space.layer_candidates(s, i)) for s, i in searched), default=0)):
        genotype = choice_genotype(skeleton, space, choice)
        candidate_network = base.build(genotype) if genotype is not None else None
        if candidate_network is not None:
            remap_network(source, candidate_network)
        choices.append(candidate_network)
    network = base.build(skeleton)
    remap_network(source, network)
    # A super network serves the target task; the classifier (part "classifier" of a base network) is not searched.
    network.set_submodule(network.part_paths["classifier"], nn.Identity())
    layers = []
    for s, stage in enumerate(skeleton.stages):
        if not space.is_searched(s):
            continue
        for i in range(len(stage.ops)):
            path = network.layer_paths[s][i]
            if not isinstance(path, str):
                raise PluginError(f"base {base_name!r}: stage {s + 1}, layer {i + 1} is the modules {path!r}; a searched layer must be one module ({GUIDE})")
            candidates = space.layer_candidates(s, i)
            mixed = MixedOp({op.name: nn.Identity() if op.is_skip else choices[j].get_submodule(path) for j, op in enumerate(candidates)})
            network.set_submodule(path, mixed)
            layers.append(SearchedLayer(s, i, path, candidates))
    return SuperNetwork(network, layers, base=base_name, space=space, skeleton=skeleton)
