"""``remap.mode: preserve`` — a remapping that keeps the base network's function (DESIGN §1.6, "Selection that wins").

FNA's rules (``fna``, the paper's and the default) copy: an inserted layer copies its stage's last layer (Eq. 1),
a narrower layer takes the first channels. Both change what the network computes, and on the demo trained mAP
falls with every layer they change. ``preserve`` departs from the copy rule where it loses the base's function:

- **Inserted layers start as the identity** (Net2Net's deeper network, Chen et al. 2016; zero-γ residual
  blocks, Goyal et al. 2017): the layer still copies its stage's last layer, and its last BatchNorm gets
  γ = β = 0, so a residual block ``x + branch(x)`` outputs ``x`` in eval mode and trains from there. This
  applies to blocks that say they are residual (``use_residual``, as the MobileNet family's blocks do); a
  plugin's block without it keeps FNA's copy and is listed in the report.
- **A narrower layer keeps its most important channels** (OFA sorts channels by importance; NetAdapt prunes
  by magnitude): a narrower inverted-residual layer (1×1 expansion conv → BN → depthwise conv → BN → 1×1
  projection, recognised by shape) is filled from a copy of its source layer whose hidden channels are
  reordered by importance — a permutation, so that copy computes the same — and the rules' first channels
  are then the most important ones. Layers that keep their width are filled from the source as it is, so a
  genotype that only inserts layers computes the base's output bit for bit. A channel's importance is |γ| of the depthwise conv's BatchNorm times the ℓ₁ norm of the
  projection weights that read the channel: how strongly it reaches the block's output.
- Kernel growth (Eq. 2) is already exact, and layers the target drops are gone in both modes.

Rules registered by plugins receive the mode as a ``mode`` keyword when their signature takes one, and may
ignore it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from netadapt.config import REMAP_MODES
from netadapt.contracts import module_paths
from netadapt.errors import ConfigError



def check_mode(mode: str) -> str:
    if mode not in REMAP_MODES:
        raise ConfigError(f"remap mode must be one of {', '.join(REMAP_MODES)}, got {mode!r}")
    return mode


def _tensor_modules(network: nn.Module, path: str) -> list[nn.Module]:
    """The modules under ``path`` that own parameters, in registration order."""
    return [m for m in network.get_submodule(path).modules() if any(True for _ in m.parameters(recurse=False))]


def inverted_residual_chain(modules: list[nn.Module]) -> tuple[nn.Conv2d, nn.BatchNorm2d, nn.Conv2d, nn.BatchNorm2d, nn.Conv2d] | None:
    """(expansion conv, its BN, depthwise conv, its BN, projection conv) when ``modules`` are exactly an inverted
    residual block's (recognised by shape: 1×1 conv to H channels, BN(H), depthwise conv on H, BN(H), 1×1 conv
    from H, BN); else ``None``."""
    if len(modules) != 6:
        return None
    expand, bn1, depthwise, bn2, project, bn3 = modules
    if not all(isinstance(m, nn.Conv2d) for m in (expand, depthwise, project)):
        return None
    if not all(isinstance(m, nn.BatchNorm2d) for m in (bn1, bn2, bn3)):
        return None
    hidden = expand.out_channels
    if expand.groups != 1 or project.groups != 1 or project.in_channels != hidden:
        return None
    if not (depthwise.groups == depthwise.in_channels == depthwise.out_channels == hidden):
        return None
    if bn1.num_features != hidden or bn2.num_features != hidden:
        return None
    return expand, bn1, depthwise, bn2, project


def channel_importance(depthwise_bn: nn.BatchNorm2d, project: nn.Conv2d) -> torch.Tensor:
    """|γ_c| of the depthwise conv's BatchNorm × ‖projection weights reading channel c‖₁ (module docstring)."""
    return depthwise_bn.weight.detach().abs() * project.weight.detach().abs().sum(dim=(0, 2, 3))


@torch.no_grad()
def sort_hidden_channels(chain: tuple[nn.Conv2d, nn.BatchNorm2d, nn.Conv2d, nn.BatchNorm2d, nn.Conv2d]) -> None:
    """Reorder a block's hidden channels, most important first: the same permutation through the expansion conv's
    out-channels, both BatchNorms, the depthwise conv and the projection's in-channels (the block's function is
    unchanged)."""
    expand, bn1, depthwise, bn2, project = chain
    order = torch.argsort(channel_importance(bn2, project), descending=True, stable=True)
    for module in (expand, depthwise):
        module.weight.copy_(module.weight[order])
        if module.bias is not None:
            module.bias.copy_(module.bias[order])
    for bn in (bn1, bn2):
        for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
            if tensor is not None:
                tensor.copy_(tensor[order])
    project.weight.copy_(project.weight[:, order])


def narrowed_layers(source: nn.Module, target: nn.Module, correspondence: dict[str, str]) -> dict[str, str]:
    """Target layer path → source layer path of every inverted-residual target layer whose hidden width is below its
    source layer's (Eq. 1's ``correspondence``)."""
    narrowed = {}
    for stage in target.layer_paths:
        for path in stage:
            if path is None or len(module_paths(path)) != 1 or path not in correspondence:
                continue
            target_chain = inverted_residual_chain(_tensor_modules(target, path))
            source_chain = inverted_residual_chain(_tensor_modules(source, correspondence[path]))
            if target_chain and source_chain and target_chain[0].out_channels < source_chain[0].out_channels:
                narrowed[path] = correspondence[path]
    return narrowed


def importance_sorted(source: nn.Module, layers: set[str] | None = None) -> tuple[nn.Module, int]:
    """A copy of ``source`` whose inverted-residual layers (those in ``layers``; ``None``: all) have their hidden
    channels sorted by importance; the number of layers sorted. ``source`` itself is not changed."""
    source = copy.deepcopy(source)
    sorted_layers = 0
    for stage in source.layer_paths:
        for path in stage:
            if path is None or len(module_paths(path)) != 1 or (layers is not None and path not in layers):
                continue
            chain = inverted_residual_chain(_tensor_modules(source, module_paths(path)[0]))
            if chain is not None:
                sort_hidden_channels(chain)
                sorted_layers += 1
    return source, sorted_layers


def inserted_layers(source_paths: list[list], target_paths: list[list]) -> list:
    """The target layers that Eq. 1 fills with a copy of their stage's last source layer (``i > l``)."""
    inserted = []
    for source_stage, target_stage in zip(source_paths, target_paths):
        sources = [path for path in source_stage if path is not None]
        targets = [path for path in target_stage if path is not None]
        inserted.extend(targets[len(sources):])
    return inserted


@torch.no_grad()
def start_as_identity(target: nn.Module, layer_path) -> bool:
    """Zero γ and β of the last BatchNorm of a residual layer, so that it computes the identity in eval mode; whether
    it could (a layer that does not say it is residual through ``use_residual`` is left as it is)."""
    paths = module_paths(layer_path)
    if len(paths) != 1:
        return False
    layer = target.get_submodule(paths[0])
    if getattr(layer, "use_residual", False) is not True:
        return False
    norms = [m for m in layer.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms or norms[-1].weight is None:
        return False
    norms[-1].weight.zero_()
    norms[-1].bias.zero_()
    return True
