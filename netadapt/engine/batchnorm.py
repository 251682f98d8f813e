"""BatchNorm running statistics re-estimated under a network's current weights ("BN recalibration")."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
# A BatchNorm's running statistics average its last ~1/momentum steps (an exponential average). When that window
# is more than a quarter of a run, over a third of the final statistics (e^-1) come from weights older than the
# run's last quarter: netadapt re-estimates them after training. MobileNetV2-SSDLite (momentum 0.1 and 0.03,
# windows of 10 and 33 steps) is left alone from 133 iterations on; torchvision's MobileNetV3 (0.01) is re-estimated
# in runs under 400 iterations, and a network with momentum 3e-4 in runs under 13,000.
STALE_WINDOW_SHARE = 0.25


def stale_batchnorm(network: nn.Module, *, iterations: int) -> list[str]:
    """The BatchNorm layers of ``network`` whose momentum is too small for a run of ``iterations`` steps:
    1 / momentum > STALE_WINDOW_SHARE · iterations (a ``momentum=None`` layer, a cumulative average, always is)."""
    return [
        name for name, module in network.named_modules()
        if isinstance(module, BATCH_NORMS) and module.track_running_stats
        and (module.momentum is None or 1 / module.momentum > STALE_WINDOW_SHARE * iterations)
    ]


@torch.no_grad()
def reestimate_batchnorm(network: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Set every BatchNorm's running statistics of ``network`` to their exact average over ``batches``.

    The statistics are reset, then ``network`` runs each batch in train mode with ``momentum=None``
    (BN's cumulative average instead of its exponential one); each layer's momentum and the
    network's mode are restored afterwards. Used where training's exponential average does not
    reflect the final weights (a small momentum, few steps: :mod:`netadapt.jobs.pretrain`), or to
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
