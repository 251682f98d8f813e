"""BatchNorm running statistics re-estimated under a network's current weights ("BN recalibration")."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def reestimate_batchnorm(network: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Set every BatchNorm's running statistics of ``network`` to their exact average over ``batches``.

    The statistics are reset, then ``network`` runs each batch in train mode with ``momentum=None``
    (BN's cumulative average instead of its exponential one); each layer's momentum and the
    network's mode are restored afterwards. Used where training's exponential average does not
    reflect the final weights (a small momentum, few steps: :mod:`netadapt.bases.pretrain`), or to
    give a random network the statistics of real inputs (tests, benchmarks).
    """
    norms = [module for module in network.modules() if isinstance(module, BATCH_NORMS)]
    momenta = [norm.momentum for norm in norms]
    training = network.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    network.train()
    try:
        for batch in batches:
            network(batch)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        network.train(training)
