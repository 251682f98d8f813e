"""Options shared by several commands, declared once: single options, and blocks of them (:func:`with_options`).

A block is a function whose parameters are options and which returns the block's value (:class:`Source`,
:class:`Network`, :class:`Machine`); a command declares the blocks it takes with :func:`with_options` and receives each
block's value as one argument, so that the options ``train``, ``search``, ``adapt`` and ``select`` share are written here
only.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from netadapt import jobs

DATA = typer.Option(None, "--data", help="Dataset folder (COCO format: train.json/val.json + images/, or COCO 2017's layout). Default: the embedded demo.")
DATASET = typer.Option(None, "--dataset", help="Dataset plugin [default: coco with --data, else demo].")
CONFIG = typer.Option(None, "--config", help="YAML config file (examples/configs/).")
SET = typer.Option(None, "--set", help="Override a config value: section.field=value (repeatable).")
DEVICE = typer.Option(None, "--device", help="cpu or cuda [default: cuda when available].")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")
JSON = typer.Option(False, "--json", help="Print the result as JSON.")
TARGET = typer.Option(
    None, "--target", help="Hard budget of the searched layers in the cost model's unit: 250M, 0.25B, or ms for latency [config: search.target]."
)
BASE = typer.Option("mobilenetv2", "--base", help="Base network plugin.")
DETECTOR = typer.Option("ssdlite", "--detector", help="Detector plugin.")
BASE_WEIGHTS = typer.Option(
    None, "--weights", help="Base weights: a .pth, a netadapt checkpoint, 'imagenet', or 'none' (random). "
    "Default on the demo: the base pretrained on demo object crops (cached)."
)
MAX_MEMORY = typer.Option(
    None, "--max-memory", help="Memory the job may use (4G, 512M); by default what the device has: MemAvailable on CPU, free memory on CUDA."
)
AUTO_BATCH = typer.Option(
    False, "--auto-batch", help="When the step's projected peak memory does not fit, run at the largest batch that does, lr scaled linearly."
)
RESUME = typer.Option(False, "--resume", help="Continue from OUT/last.pth.")
FORCE = typer.Option(False, "--force", help="Start over in an OUT that holds a resumable run (its last.pth is deleted).")

C = TypeVar("C")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Source:
    """``--data``, ``--dataset``, ``--config``, ``--set``: the images, and the config sections read for them."""

    data: jobs.Data
    config_file: Path | None
    overrides: list[str]

    def config(self, kind: type[C], section: str, flags: dict[str, Any] | None = None) -> C:
        return self.data.config(kind, section, config_file=self.config_file, overrides=self.overrides, flags=flags)


def source(data: Path = DATA, dataset: str = DATASET, config_file: Path = CONFIG, overrides: list[str] = SET) -> Source:
    from netadapt import jobs  # when the command runs: the jobs import torch

    return Source(jobs.Data(data, dataset), config_file, overrides or [])


@dataclass(frozen=True)
class Network:
    """``--base``, ``--detector``, ``--weights``: the networks a job builds and the weights its backbone starts from."""

    base: str
    detector: str
    weights: str | None


def network(base: str = BASE, detector: str = DETECTOR, weights: str = BASE_WEIGHTS) -> Network:
    return Network(base, detector, weights)


@dataclass(frozen=True)
class Machine:
    """``--device``, ``--max-memory``, ``--auto-batch``, ``--quiet``, ``--json``: where and how visibly a job runs."""

    device: str | None
    max_memory: str | None
    auto_batch: bool
    quiet: bool
    json: bool

    def job_options(self) -> dict[str, Any]:
        """The job's keyword arguments these options give."""
        return {"device": self.device, "max_memory": self.max_memory, "auto_batch": self.auto_batch, "progress": not self.quiet}


def machine(
    device: str = DEVICE, max_memory: str = MAX_MEMORY, auto_batch: bool = AUTO_BATCH, quiet: bool = QUIET, json_: bool = JSON,
) -> Machine:
    return Machine(device, max_memory, auto_batch, quiet, json_)


def with_options(**blocks: Callable[..., Any]) -> Callable[[F], F]:
    """Give a command the options of each block (``name=block``): its signature, which Typer reads, gains the block's
    parameters after the command's own, and the command receives the block's value as the argument ``name``."""

    def decorate(command: F) -> F:
        own = [parameter for parameter in inspect.signature(command, eval_str=True).parameters.values() if parameter.name not in blocks]
        taken = {name: list(inspect.signature(block, eval_str=True).parameters.values()) for name, block in blocks.items()}

        @functools.wraps(command)
        def run(**given: Any) -> Any:
            for name, block in blocks.items():
                given[name] = block(**{parameter.name: given.pop(parameter.name) for parameter in taken[name]})
            return command(**given)

        parameters = own + [parameter for block_parameters in taken.values() for parameter in block_parameters]
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
        return run  # type: ignore[return-value]

    return decorate
