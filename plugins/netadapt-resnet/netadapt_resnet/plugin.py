"""The ``netadapt`` entry point of this package: bases ``resnet18`` and ``resnet50``, their remap rule
and the search space ``fna-resnet``.

Depth (Eq. 1) and kernels (Eq. 2) need nothing of their own: the core driver aligns residual
blocks by the bases' ``layer_paths`` and the built-in conv rule centres kernels. ResNet's convs
and classifier are their own types (:class:`~netadapt_resnet.network.Conv2d`,
:class:`~netadapt_resnet.network.Linear`) with the Net2Net width rule
(:func:`~netadapt_resnet.remap.remap_net2net`); BatchNorm keeps the built-in rule.
"""

from __future__ import annotations

from netadapt.hookspecs import hookimpl
from netadapt_resnet.network import RESNET18, RESNET50, Conv2d, Linear
from netadapt_resnet.remap import remap_net2net
from netadapt_resnet.space import FNA_RESNET


@hookimpl
def register_bases(register) -> None:
    for base in (RESNET18, RESNET50):
        register(base.name, base)


@hookimpl
def register_remap_rules(register) -> None:
    register(Conv2d, remap_net2net)
    register(Linear, remap_net2net)


@hookimpl
def register_search_spaces(register) -> None:
    register(FNA_RESNET.name, FNA_RESNET)
