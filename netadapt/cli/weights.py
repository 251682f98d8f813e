"""Where the base network's weights come from when a command is given ``--weights`` (or not)."""

from __future__ import annotations

from netadapt.cli.console import stderr, warn
from netadapt.weights import Weights, read_weights


def resolve_base_weights(weights: str | None, *, base: str, demo: bool, progress: bool = True) -> Weights | None:
    """``--weights``: a file, ``imagenet`` or ``none``; without it, the demo's pretrained base (demo data; its
    pretraining draws a bar unless ``progress`` is false: ``--quiet``) or random."""
    if weights == "none":
        return None
    if weights is not None:
        return read_weights(weights, base_name=base)
    if demo:
        from netadapt.bases.pretrain import pretrained_demo_base

        path = pretrained_demo_base(base, announce=lambda message: stderr.print(message, markup=False), progress=progress)
        return read_weights(path, base_name=base)
    warn(f"no --weights given: the {base} backbone starts from RANDOM initialisation (pass --weights FILE or 'imagenet').")
    return None
