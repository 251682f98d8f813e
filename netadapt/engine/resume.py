"""What a resumed run may change: nothing that alters its result.

A run's ``last.pth`` holds the configuration it started with. ``--resume`` with another value of a
field that shapes the result (learning rate, input size, epochs, batch size, strategy, seed, the
cost settings of a search...) would mix two runs into one that neither describes, so it is a
:class:`~netadapt.errors.ConfigError` naming the field and both values. Only fields that cannot
change the result may differ: how data is loaded (``workers``) and how often the run logs and
checkpoints (``log_every``, ``checkpoint_every``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from netadapt.errors import ConfigError, DataError, RunError

FREE_TO_CHANGE = frozenset({"workers", "log_every", "checkpoint_every"})


RUN_NAMES = {"train": "training", "search": "search"}


def check_same_config(state: dict[str, Any], config: Any, path: Path, *, section: str) -> None:
    """Refuse a resumed run whose config (a dataclass) differs from the one it started with."""
    started = state.get("config") or {}
    now = dataclasses.asdict(config)
    for name, value in now.items():
        if name in FREE_TO_CHANGE or name not in started or started[name] == value:
            continue
        raise ConfigError(
            f"{path}: {section}.{name} is {value!r} but the {RUN_NAMES.get(section, 'run')} started with {started[name]!r}; "
            f"a resumed run keeps its settings (start a new run to change {section}.{name})"
        )


def check_same_classes(started: list[str], now: list[str], *, path: Path, annotations: Any) -> None:
    """A resumed run's dataset must have the classes it started with (its head is sized by them)."""
    if list(started) != list(now):
        raise DataError(
            f"{annotations}: classes {list(now)[1:]} differ from those the run in {path} started with ({list(started)[1:]})"
        )


def check_same_shapes(saved: dict[str, Any], model: Any, path: Path) -> None:
    """A resumed run's network must have the shapes it was saved with: another dataset's classes (the
    head) or another architecture would otherwise fail deep in ``load_state_dict``."""
    expected = model.state_dict()
    for key, tensor in saved.items():
        if key in expected and tuple(tensor.shape) != tuple(expected[key].shape):
            raise DataError(
                f"{path}: {key} was saved with shape {tuple(tensor.shape)} but is {tuple(expected[key].shape)} now: "
                "the dataset's classes (or the network) differ from those the run started with"
            )


def check_finite_loss(loss: float, *, iteration: int) -> None:
    """Stop a run whose loss is NaN or infinite (a learning rate too high, bad data) instead of training on."""
    if not math.isfinite(loss):
        raise RunError(
            f"iteration {iteration}: the loss is {loss} (not finite); the run stopped (lower the learning rate, "
            "or check the data); the last checkpoint is kept"
        )
