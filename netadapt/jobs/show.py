"""The show job (``netadapt show``): a genotype's layers with their costs, and a picture of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from netadapt.config import check_input_size
from netadapt.cost.breakdown import CostBreakdown, genotype_cost
from netadapt.files import check_output_file
from netadapt.genotype import Genotype, load_genotype


@dataclass(frozen=True)
class Shown:
    genotype: Genotype
    breakdown: CostBreakdown  # per layer, MAdds at ``breakdown.input_size``


def show(genotype_file: Path, *, input_size: int | None = None, png: Path | None = None) -> Shown:
    """The layers of the genotype in ``genotype_file`` with their parameters and MAdds (at ``input_size``, by default the
    genotype's); with ``png``, its architecture drawn into that file."""
    genotype = load_genotype(genotype_file)
    if input_size is not None:
        check_input_size(input_size, "--input-size")
    if png is not None:
        check_output_file(png, inputs=[genotype_file])
    breakdown = genotype_cost(genotype, input_size=input_size, where=str(genotype_file))
    if png is not None:
        from netadapt.plots import draw_architecture

        draw_architecture(genotype, png, title=genotype_file.stem)
    return Shown(genotype, breakdown)
