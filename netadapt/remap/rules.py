"""Built-in parameter-remapping rules, one per layer type (DESIGN §1.2; paper Section 2.1).

A rule is a plain function ``rule(source_module, target_module)`` that fills the target's
tensors from the source's in place. Rules are shape-driven: they look at tensor shapes, never at
names. Along every channel dimension a narrower target takes the source's first channels and a
wider one repeats the source's channels cyclically; along the spatial dimensions of a kernel a
larger target holds the source kernel in its centre with zeros around it (Eq. 2), a smaller one
takes the centre crop. With BN in eval mode the centred kernel computes exactly what the source
did, because the padding grows with the kernel.
"""

from __future__ import annotations

import torch
from torch import nn

from netadapt.bases.mobilenet import DepthwiseConv2d
from netadapt.errors import RemapError
from netadapt.hookspecs import hookimpl


def select_channels(source: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """First ``size`` channels of ``source`` along ``dim``, repeated cyclically when ``size`` is larger."""
    index = torch.arange(size, device=source.device) % source.shape[dim]
    return source.index_select(dim, index)


def remap_kernel(source: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Place a k×k kernel in the centre of a larger zero kernel, or centre-crop it (Eq. 2).

    Works on the two last dimensions; sizes must differ by an even number so that the centres align.
    """
    source_height, source_width = source.shape[-2:]
    if (height - source_height) % 2 or (width - source_width) % 2:
        raise RemapError(f"cannot centre a {source_height}×{source_width} kernel in a {height}×{width} one")
    result = source.new_zeros((*source.shape[:-2], height, width))
    top, left = (height - source_height) // 2, (width - source_width) // 2
    # Overlapping window in target (t) and source (s) coordinates.
    t_top, s_top = max(top, 0), max(-top, 0)
    t_left, s_left = max(left, 0), max(-left, 0)
    rows, cols = min(height, source_height), min(width, source_width)
    result[..., t_top : t_top + rows, t_left : t_left + cols] = source[..., s_top : s_top + rows, s_left : s_left + cols]
    return result


def remap_tensor(source: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Channel dimensions (all but the last two of a 4-D kernel) by selection, kernel dims by Eq. 2."""
    if source.dim() != len(shape):
        raise RemapError(f"tensor of shape {tuple(source.shape)} cannot become shape {tuple(shape)}")
    channel_dims = source.dim() - 2 if source.dim() == 4 else source.dim()
    result = source
    for dim in range(channel_dims):
        if result.shape[dim] != shape[dim]:
            result = select_channels(result, shape[dim], dim)
    if source.dim() == 4 and result.shape[-2:] != shape[-2:]:
        result = remap_kernel(result, shape[-2], shape[-1])
    return result


@torch.no_grad()
def copy_tensors(source: nn.Module, target: nn.Module) -> None:
    """Copy every parameter and buffer the target owns (not its children's) from the source, remapped."""
    source_tensors = dict(source.named_parameters(recurse=False)) | dict(source.named_buffers(recurse=False))
    target_tensors = dict(target.named_parameters(recurse=False)) | dict(target.named_buffers(recurse=False))
    for name, tensor in target_tensors.items():
        if tensor is None:
            continue
        if source_tensors.get(name) is None:
            raise RemapError(f"source {type(source).__name__} has no tensor {name!r}")
        if tensor.dim() == 0:  # e.g. BatchNorm's num_batches_tracked
            tensor.copy_(source_tensors[name])
        else:
            tensor.copy_(remap_tensor(source_tensors[name], tensor.shape))


def is_depthwise(conv: nn.Conv2d) -> bool:
    """A depthwise convolution by its shape: ``groups == in_channels == out_channels`` (more than one channel)."""
    return conv.groups == conv.in_channels == conv.out_channels > 1


def remap_conv(source: nn.Conv2d, target: nn.Conv2d) -> None:
    """Conv2d: out- and in-channels by selection, kernel by Eq. 2 (also grouped convs with groups kept).

    A depthwise conv, recognised by shape on both sides (a plain ``nn.Conv2d(C, C, k, groups=C)``
    as torchvision builds it), is its own case: :func:`remap_depthwise_conv`.
    """
    if is_depthwise(source) and is_depthwise(target):
        remap_depthwise_conv(source, target)
        return
    if source.groups != target.groups:
        raise RemapError(
            f"conv groups differ: source {source.groups} ({source.in_channels}→{source.out_channels} channels), "
            f"target {target.groups} ({target.in_channels}→{target.out_channels}); a depthwise conv has "
            "groups == in_channels == out_channels on both sides"
        )
    copy_tensors(source, target)


def remap_depthwise_conv(source: nn.Conv2d, target: nn.Conv2d) -> None:
    """Depthwise Conv2d: channels by selection (weight is C×1×k×k), kernel by Eq. 2, groups follow channels."""
    for role, module in (("source", source), ("target", target)):
        if not is_depthwise(module):
            raise RemapError(f"{role} is not depthwise (groups={module.groups}, channels={module.in_channels}→{module.out_channels})")
    copy_tensors(source, target)


def remap_batch_norm(source: nn.BatchNorm2d, target: nn.BatchNorm2d) -> None:
    """BatchNorm: weight, bias, running mean and variance by channel selection."""
    copy_tensors(source, target)


def remap_linear(source: nn.Linear, target: nn.Linear) -> None:
    """Linear: output and input features by selection."""
    copy_tensors(source, target)


@hookimpl
def register_remap_rules(register) -> None:
    register(nn.Conv2d, remap_conv)
    register(DepthwiseConv2d, remap_depthwise_conv)
    register(nn.BatchNorm2d, remap_batch_norm)
    register(nn.Linear, remap_linear)
