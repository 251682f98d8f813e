"""The front job (``netadapt front``): the accuracy-vs-cost front of a finished search (DESIGN §1.6,
:mod:`netadapt.search.front`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from netadapt.files import check_outputs, output_folder
from netadapt.jobs.common import Announce, Data, check_memory, distributed_run
from netadapt.search.front import compute_front, front_outputs, load_search, resolve_targets, write_front

if TYPE_CHECKING:
    from netadapt.search.front import Front, FrontPoint


@dataclasses.dataclass(frozen=True)
class FrontResult:
    """The front (:class:`netadapt.search.front.Front`), the folder it was written to and the files written there."""

    front: Front
    out_dir: Path
    written: list[Path]
    unit: str


def front(
    search_dir: Path, *, targets: list[str] | None = None, points: int | None = None, evaluate_on: str = "alpha", bn_images: int = 256,
    finetune_steps: int = 0, data: Data = Data(), out_dir: Path | None = None, device: str | None = None, max_memory: str | int | None = None,
    auto_batch: bool = False, announce: Announce = print, on_point: Callable[[FrontPoint, str], None] | None = None,
) -> FrontResult:
    """Derive the best architecture under each budget (``targets``, or ``points`` evenly spaced) from the search in
    ``search_dir`` and score each with the super network's weights on ``evaluate_on`` (``alpha``: the α half of the
    training split, or ``val``); written to ``out_dir`` (default ``SEARCH_DIR/front``). ``on_point(point, unit)`` hears
    of each point as it is scored."""
    search = load_search(search_dir)
    resolved = resolve_targets(search, targets, points)
    splits = data.splits()
    # The front's steps run one path at the search's batch: BatchNorm passes, evaluation, fine-tuning steps; the search's
    # weight step (one path under fna and sampled, all of them under darts) bounds them.
    config = check_memory(
        "front", search.config, base=search.base, detector=search.detector, splits=splits, device=device, max_memory=max_memory,
        auto_batch=auto_batch, announce=announce, phase="search weight step",
    )
    search = dataclasses.replace(search, config=config)
    unit = search.table.unit
    out_dir = out_dir or search.directory / "front"
    check_outputs(front_outputs(out_dir, len(resolved), base=search.base_ops is not None))  # before any point is computed
    with output_folder(out_dir), distributed_run(device) as context:
        computed = compute_front(
            search, resolved, splits, evaluate_on=evaluate_on, bn_images=bn_images, device=context.device, finetune_steps=finetune_steps,
            announce=(lambda point: on_point(point, unit)) if on_point else (lambda point: None),
        )
        written = write_front(computed, out_dir)
    return FrontResult(computed, out_dir, written, unit)
