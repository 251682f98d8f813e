"""Pictures a person can look at: the architecture drawing of ``netadapt show --png``.

The drawing follows the paper's Fig. 5: one box per block from input to output, coloured by its
depthwise kernel size, its height proportional to its expansion ratio, stages separated and
labelled with their output channels and stride.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from netadapt.files import atomic_path
from netadapt.genotype import Genotype

KERNEL_COLOURS = {1: "#cccccc", 3: "#7fb3e6", 5: "#f2b35e", 7: "#e2725b", 9: "#9b6fc9"}
OTHER_KERNEL_COLOUR = "#888888"


def draw_architecture(genotype: Genotype, path: str | Path, *, title: str = "") -> None:
    """Draw ``genotype`` into a PNG file (written atomically)."""
    layers = [(s, op) for s, stage in enumerate(genotype.stages) for op in stage.ops if not op.is_skip]
    max_expansion = max(op.expansion for _, op in layers)
    figure = Figure(figsize=(max(6.0, 0.55 * len(layers) + 2), 3.2))  # no pyplot: no backend to choose, nothing global
    axes = figure.subplots()
    x = 0.0
    previous_stage = None
    for stage_index, op in layers:
        if previous_stage is not None and stage_index != previous_stage:
            x += 0.35  # a gap between stages
        if stage_index != previous_stage:
            stage = genotype.stages[stage_index]
            axes.text(x, -0.12, f"{stage.c_out}\n/{stage.stride}", fontsize=7, ha="left", va="top", color="#444444")
        height = 0.25 + 0.75 * op.expansion / max_expansion
        colour = KERNEL_COLOURS.get(op.kernel, OTHER_KERNEL_COLOUR)
        axes.add_patch(Rectangle((x, 0.5 - height / 2), 0.8, height, facecolor=colour, edgecolor="black", linewidth=0.6))
        axes.text(x + 0.4, 0.5, op.name.replace("_", "\n"), fontsize=6.5, ha="center", va="center")
        previous_stage = stage_index
        x += 1.0
    axes.set_xlim(-0.3, x + 0.1)
    axes.set_ylim(-0.45, 1.35)
    axes.axis("off")
    kernels = sorted({op.kernel for _, op in layers})
    axes.legend(
        handles=[Patch(facecolor=KERNEL_COLOURS.get(k, OTHER_KERNEL_COLOUR), edgecolor="black", label=f"{k}×{k}") for k in kernels],
        loc="upper right", ncol=len(kernels), fontsize=7, frameon=False, title="kernel (height: expansion)", title_fontsize=7,
    )
    axes.set_title(title or f"{genotype.base} genotype", fontsize=9, loc="left")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=150)


def draw_alpha_history(rows: list[list], path: str | Path) -> None:
    """Op probabilities of every searched layer over the search epochs (``alpha_history.csv`` rows).

    One small panel per layer, laid out stage by stage, one line per candidate op; the kernel
    gives the colour (as in :func:`draw_architecture`), the expansion the line style (e3 dashed).
    """
    by_layer: dict[tuple[int, int], dict[str, list[tuple[int, float]]]] = {}
    for epoch, _, stage, stage_layer, op, probability in rows:
        by_layer.setdefault((stage, stage_layer), {}).setdefault(op, []).append((epoch, probability))
    stages = sorted({stage for stage, _ in by_layer})
    columns = max((layer for _, layer in by_layer), default=1)
    figure = Figure(figsize=(2.4 * columns, 1.8 * max(1, len(stages))))
    axes = figure.subplots(len(stages) or 1, columns, squeeze=False, sharey=True)
    for row, stage in enumerate(stages):
        for column in range(columns):
            axis = axes[row][column]
            ops = by_layer.get((stage, column + 1))
            if ops is None:
                axis.axis("off")
                continue
            for op, points in ops.items():
                epochs, probabilities = zip(*points)
                kernel = None if op == "skip" else int(op[1 : op.index("_")])
                colour = "black" if kernel is None else KERNEL_COLOURS.get(kernel, OTHER_KERNEL_COLOUR)
                style = ":" if kernel is None else ("--" if op.endswith("_e3") else "-")
                axis.plot(epochs, probabilities, style, color=colour, label=op, linewidth=1.2)
            axis.set_title(f"stage {stage}, layer {column + 1}", fontsize=7)
            axis.tick_params(labelsize=6)
    legend: dict[str, object] = {}  # every op once, whichever panel has it (the first layer of a stage has no skip)
    for axis in axes.flat:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    figure.legend(list(legend.values()), list(legend), loc="lower center", ncol=len(legend) or 1, fontsize=7, frameon=False)
    figure.supylabel("softmax(α)", fontsize=8)
    figure.suptitle("op probabilities per searched layer over the search epochs", fontsize=9)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120)
