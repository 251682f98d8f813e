"""What identifies an op in the look-up table: its structure and its input, never its weights.

The structure is every submodule's qualified type name (module and class: two classes of the
same name may compute differently) and ``extra_repr()`` (the hyper-parameters torch prints: a
convolution's channels, kernel, stride, padding, groups and bias; a batch norm's features; an
activation's kind), nested as the modules are. Two ops with the same structure
run the same computation, whatever their weights; a changed kernel, stride, width or group
count is a different op. A module whose forward depends on a setting torch does not print
(MobileNetV2's residual connection follows from its convolutions' shapes, so it needs none)
should show it in its ``extra_repr``.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def structure(module: nn.Module) -> str:
    """``module.Type(extra_repr)[child, child, ...]``, recursively."""
    children = ",".join(f"{name}={structure(child)}" for name, child in module.named_children())
    kind = type(module)
    return f"{kind.__module__}.{kind.__qualname__}({module.extra_repr()})" + (f"[{children}]" if children else "")


def fingerprint(module: nn.Module) -> str:
    """A short hash of :func:`structure`."""
    return hashlib.sha256(structure(module).encode()).hexdigest()[:16]


def input_key(inputs: tuple[torch.Tensor, ...]) -> str:
    """``float32[1,24,48,48]`` (several inputs joined by ``;``)."""
    return ";".join(f"{str(x.dtype).removeprefix('torch.')}[{','.join(map(str, x.shape))}]" for x in inputs)


def entry_key(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> str:
    """The look-up table key of one op on one input: ``float32[1,24,48,48] 3fa2…``."""
    return f"{input_key(inputs)} {fingerprint(module)}"


def describe(module: nn.Module) -> str:
    """A readable name for messages: ``InvertedResidual(conv 1×1 24→144, conv 5×5/2 144→144 g144, conv 1×1 144→32)``."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs or len(convs) > 4:
        blocks = len(list(module.children()))
        return f"{type(module).__name__}({blocks} blocks, {len(convs)} convs)" if convs else type(module).__name__
    return f"{type(module).__name__}({', '.join(_conv(conv) for conv in convs)})"


def _conv(conv: nn.Conv2d) -> str:
    kernel = "×".join(map(str, conv.kernel_size))
    stride = f"/{conv.stride[0]}" if conv.stride[0] > 1 else ""
    groups = f" g{conv.groups}" if conv.groups > 1 else ""
    return f"conv {kernel}{stride} {conv.in_channels}→{conv.out_channels}{groups}"
