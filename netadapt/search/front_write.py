"""The front's files (DESIGN §1.6): ``front.json``, ``front.csv``, ``front.png`` and a ``genotype.yaml`` per point."""

from __future__ import annotations

import csv
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netadapt.errors import NetadaptWarning
from netadapt.files import atomic_path, check_output_dir, remove_outputs, write_json_atomic, write_text_atomic
from netadapt.genotype import save_genotype
from netadapt.search.front_plan import FinishedSearch, FrontPoint

CSV_FIELDS = ("name", "target_given", "target", "predicted", "measured", "params", "proxy_map", "proxy_map50", "proxy_loss", "genotype", "ops")


@dataclass
class Front:
    search: FinishedSearch
    points: list[FrontPoint]
    base: FrontPoint | None
    evaluated_on: str  # a sentence: which images the proxy mAP counts
    bn_images: int
    scope: str  # which layers the costs count
    finetune_steps: int = 0  # optimizer steps on each path alone before it is scored (0: the inherited weights as they are)

    def to_dict(self) -> dict[str, Any]:
        table = self.search.table
        tuned = f", after {self.finetune_steps} fine-tuning steps on that path alone (weight half; undone before the next)" if self.finetune_steps else ""
        return {
            "search": str(self.search.directory), "base_network": self.search.base, "detector": self.search.detector,
            "space": self.search.space.name, "cost_model": table.model, "unit": table.unit, "cost_scope": self.scope,
            "proxy": {
                "how": f"the super network's inherited weights, that path alone (one-hot op weights){tuned}, BatchNorm statistics "
                f"re-estimated on {self.bn_images} training images of the weight half; COCO mAP × 100, and the detector's "
                "training loss per image (proxy_loss, lower is better; BatchNorm statistics kept)",
                "evaluated_on": self.evaluated_on,
            },
            "base": self.base.to_dict() if self.base is not None else None,
            "points": [point.to_dict() for point in self.points],
        }



def front_outputs(out_dir: str | Path, points: int, *, base: bool) -> list[Path]:
    """The files :func:`write_front` writes for ``points`` points (and the base): checked before any point is computed."""
    out_dir = Path(out_dir)
    names = (["base"] if base else []) + [f"point-{number}" for number in range(1, points + 1)]
    return [out_dir / name for name in ("front.json", "front.csv", "front.png")] + [out_dir / name / "genotype.yaml" for name in names]


def write_front(front: Front, out_dir: str | Path) -> list[Path]:
    """``front.json``, ``front.csv``, ``front.png`` and ``<point>/genotype.yaml`` per point, each written atomically.
    The point folders of an earlier, larger front in ``out_dir`` are removed (only the files netadapt wrote there):
    a ``point-3/`` left beside a 2-point ``front.json`` would be trained as if it belonged to it."""
    out_dir = check_output_dir(out_dir)
    rows = ([front.base] if front.base is not None else []) + front.points
    for point in rows:
        save_genotype(point.genotype, out_dir / point.name / "genotype.yaml")
    _remove_stale_points(out_dir, keep={point.name for point in rows})
    data = front.to_dict()
    write_json_atomic(out_dir / "front.json", data)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in ([data["base"]] if data["base"] else []) + data["points"]:
        writer.writerow(row | {"ops": " ".join(row["ops"])})
    write_text_atomic(out_dir / "front.csv", buffer.getvalue())
    draw_front(data, out_dir / "front.png")
    return [out_dir / name for name in ("front.json", "front.csv", "front.png")] + [out_dir / p.name / "genotype.yaml" for p in rows]


def _remove_stale_points(out_dir: Path, *, keep: set[str]) -> None:
    for folder in sorted(out_dir.iterdir()):
        if folder.name in keep or not folder.is_dir() or not re.fullmatch(r"point-\d+|base", folder.name):
            continue
        if remove_outputs(folder):
            warnings.warn(f"{folder}: left in place, with files netadapt did not write; it is not part of this front", NetadaptWarning, stacklevel=3)


def draw_front(data: dict[str, Any], path: str | Path) -> None:
    """Above, proxy mAP against the cost of the searched layers: the derived architectures as a line through their
    points, each labelled with its target(s) (≤ budget) and proxy mAP (3 significant digits: an early super network's
    mAP is a few thousandths), hollow where another point is as cheap or cheaper and
    scores higher (dominated); the base network as a red star with a dotted line at its cost. Below, the same for
    the proxy loss (lower is better)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state (a notebook's stays as it was)
    from matplotlib.lines import Line2D

    scale, unit = (1e6, f"M {data['unit']}") if data["unit"] == "MAdds" else (1.0, data["unit"])
    figure = Figure(figsize=(7.0, 6.4))
    above, below = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    for axes, key, better, label in ((above, "proxy_map", 1, "proxy mAP (%)"), (below, "proxy_loss", -1, "proxy loss per image")):
        merged: dict[tuple[float, float], list[str]] = {}  # one marker per distinct architecture, its targets joined
        for p in sorted(data["points"], key=lambda p: (p["predicted"], p["target"])):
            merged.setdefault((p["predicted"] / scale, p[key]), []).append("≤" + p["target_given"].removesuffix(f" {data['unit']}"))
        xs, ys = zip(*merged)
        axes.plot(xs, ys, "-", color="#2a6fb0", linewidth=1.2, zorder=1)
        for (x, y), labels in merged.items():
            dominated = any(ox <= x and better * (oy - y) > 0 for ox, oy in merged)
            axes.scatter([x], [y], s=36, zorder=2, edgecolors="#2a6fb0", facecolors="white" if dominated else "#2a6fb0")
            axes.annotate(f"{', '.join(labels)}: {y:.3g}", (x, y), textcoords="offset points", xytext=(5, 5), fontsize=7, color="#2a6fb0")
        if data["base"] is not None:
            base = data["base"]
            axes.axvline(base["predicted"] / scale, color="#c0392b", linestyle=":", linewidth=1)
            axes.scatter([base["predicted"] / scale], [base[key]], marker="*", s=200, color="#c0392b", zorder=3)
            axes.annotate(f"base: {base[key]:.3g}", (base["predicted"] / scale, base[key]), textcoords="offset points",
                          xytext=(-8, 8), ha="right", fontsize=7, color="#c0392b")
        axes.margins(y=0.18)  # room for the labels above the highest point
        axes.set_ylabel(label, fontsize=8)
        axes.grid(alpha=0.3)
    handles = [
        Line2D([], [], color="#2a6fb0", marker="o", label="derived at each target (constrained derive)"),
        Line2D([], [], color="#2a6fb0", marker="o", markerfacecolor="white", linestyle="", label="dominated (a cheaper point scores better)"),
    ]
    if data["base"] is not None:
        handles.append(Line2D([], [], color="#c0392b", marker="*", markersize=12, linestyle="", label=f"base network ({data['base_network']})"))
    model = "" if data["cost_model"].lower() == data["unit"].lower() else f", {data['cost_model']}"
    below.set_xlabel(f"cost of the searched layers ({unit}{model})")
    above.set_title(
        f"front of {Path(data['search']).name}: inherited weights, BN re-estimated, on {data['proxy']['evaluated_on'].split(' (')[0]}",
        fontsize=9, loc="left",
    )
    above.legend(handles=handles, fontsize=7, loc="best")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=130)
