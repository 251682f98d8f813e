"""Pictures a person can look at: the architecture drawing of ``netadapt show --png``.

The drawing follows the paper's Fig. 5: one box per block from input to output, coloured by its
depthwise kernel size, its height proportional to its expansion ratio, stages separated and
labelled with their output channels and stride.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from netadapt.engine.files import atomic_path  # noqa: E402
from netadapt.genotype import Genotype  # noqa: E402

KERNEL_COLOURS = {1: "#cccccc", 3: "#7fb3e6", 5: "#f2b35e", 7: "#e2725b", 9: "#9b6fc9"}
OTHER_KERNEL_COLOUR = "#888888"


def draw_architecture(genotype: Genotype, path: str | Path, *, title: str = "") -> None:
    """Draw ``genotype`` into a PNG file (written atomically)."""
    layers = [(s, op) for s, stage in enumerate(genotype.stages) for op in stage.ops if not op.is_skip]
    max_expansion = max(op.expansion for _, op in layers)
    figure, axes = plt.subplots(figsize=(max(6.0, 0.55 * len(layers) + 2), 3.2))
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
    plt.close(figure)
