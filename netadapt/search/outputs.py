"""What a finished search writes (the module docstring of :mod:`netadapt.search.loop` lists the files).

``genotype.yaml`` (the derived architecture), ``cost.json`` (its searched layers' cost, predicted and measured, with
the expected cost and the target), ``alpha_history.csv`` / ``.png`` (softmax(α) per layer at the end of every epoch)
and ``supernet.pth`` (what ``netadapt front`` reads: :func:`netadapt.search.front_plan.load_search`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from netadapt.files import save_torch_atomic, write_json_atomic, write_text_atomic
from netadapt.genotype import Genotype, save_genotype
from netadapt.search.cost_table import CostTable, DerivedCost

if TYPE_CHECKING:
    from netadapt.search.step import SearchStep

SEARCH_FORMAT = "netadapt-search"


def write_search_outputs(
    out_dir: Path, genotype: Genotype, cost: DerivedCost, step: SearchStep, table: CostTable, target: float | None, base_cost: float | None,
    *, space, base_name: str, detector_name: str, class_names: list[str],
) -> None:
    """``genotype.yaml``, ``cost.json``, ``alpha_history.csv`` / ``.png`` and ``supernet.pth`` (module docstring)."""
    from netadapt.plots import draw_alpha_history

    save_genotype(genotype, out_dir / "genotype.yaml")
    write_json_atomic(out_dir / "cost.json", cost.to_dict() | {"expected": step.cost_now, "target": target})
    write_text_atomic(out_dir / "alpha_history.csv", _history_csv(step.history))
    draw_alpha_history(step.history, out_dir / "alpha_history.png")
    save_torch_atomic({
        "format": SEARCH_FORMAT, "base": base_name, "detector": detector_name, "space": asdict(space) | {"extra": {}},
        "skeleton": step.supernet.skeleton.to_dict(), "alpha": step.arch.state_dict(), "candidates": step.arch.candidate_names,
        "cost_table": table.__dict__, "detector_state": step.detector.state_dict(), "genotype": genotype.to_dict(),
        "config": asdict(step.config), "class_names": class_names, "base_cost": base_cost,
    }, out_dir / "supernet.pth")



HISTORY_HEADER = ["epoch", "layer", "stage", "stage_layer", "op", "probability"]


def _history_csv(rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HISTORY_HEADER)
    writer.writerows(rows)
    return buffer.getvalue()

