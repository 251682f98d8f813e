"""Base networks: the interface a base-network plugin provides, and weight files.

A base network (registered through ``register_bases``) is an object with:

- ``name`` — its registry name;
- ``base_genotype(*, width_mult=1.0) -> Genotype`` — the hand-designed architecture;
- ``build(genotype, *, num_classes=1000) -> torch.nn.Module`` — a classifier network of the
  family whose ``state_dict`` keys follow torchvision's model of that family, with
  ``forward_taps(x) -> dict[str, Tensor]``, ``tap_channels: dict[str, int]`` (features a detector
  uses, smallest stride first) and ``layer_paths: list[list[str | None]]`` (the module path of
  each genotype layer, ``None`` for ``skip``), which parameter remapping aligns on, and
  ``part_paths: dict[str, str]`` (label → module path of each part outside the stages, remapped
  by path and shown apart in cost reports; ``"classifier"`` is the classification head, which
  detectors and super networks replace by ``nn.Identity``);
- ``classifier_key`` — the state-dict key of the classifier's weight (its rows are the classes);
- ``imagenet_state_dict() -> dict[str, Tensor]`` — ImageNet weights through torchvision's weights
  API (needs the network or a populated torch hub cache);
- optionally ``default_search_space`` — the registered search space ``netadapt search`` uses for
  this base when neither ``--space`` nor the config names one (``fna`` when absent).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from netadapt.genotype import Genotype


@runtime_checkable
class BaseNetwork(Protocol):
    name: str
    classifier_key: str

    def base_genotype(self, *, width_mult: float = 1.0) -> Genotype: ...

    def build(self, genotype: Genotype, *, num_classes: int = 1000) -> torch.nn.Module: ...

    def imagenet_state_dict(self) -> dict[str, torch.Tensor]: ...
