"""Width remapping of ResNet layers: narrower takes the first channels, wider is function-preserving (Net2Net).

netadapt's built-in channel rule (:func:`netadapt.remap.rules.select_channels`) gives a narrower
layer the source's first channels (FNA, Section 2.1) and a wider one the source's channels
repeated cyclically. On its own the repetition changes the function: a duplicated channel
reaches the next layer twice. Net2Net's WiderNet (Chen, Goodfellow and Shlens, "Net2Net:
Accelerating Learning via Knowledge Transfer", ICLR 2016, §3.1) makes it exact: new units copy
existing ones and the next layer's input weights of every copy are divided by the number of
copies. This rule does that on the input-channel dimension of every ResNet conv and of the
classifier, after the built-in rule (first or repeated channels, Eq. 2 for kernels). Since every
widened output — conv, BN (repeated statistics and affine parameters, the built-in rule), ReLU,
the identity shortcut and ``downsample`` — carries the same cyclic copies, the division is exact
wherever a layer's input grew, and the network computes what the source did (BN in eval mode).
A narrower layer and a narrower input keep the built-in rule: first channels, no rescaling.
"""

from __future__ import annotations

import torch
from torch import nn

from netadapt.remap.rules import remap_conv, remap_linear


@torch.no_grad()
def remap_net2net(source: nn.Conv2d | nn.Linear, target: nn.Conv2d | nn.Linear) -> None:
    """The built-in rule, then the weights of each duplicated input channel divided by its copy count (Net2Net)."""
    (remap_linear if isinstance(target, nn.Linear) else remap_conv)(source, target)
    source_in, target_in = source.weight.shape[1], target.weight.shape[1]
    if target_in > source_in:
        copy_of = torch.arange(target_in, device=target.weight.device) % source_in  # the built-in rule's cyclic copies
        copies = torch.bincount(copy_of, minlength=source_in)[copy_of].to(target.weight.dtype)
        target.weight.div_(copies.view(1, -1, *[1] * (target.weight.dim() - 2)))
