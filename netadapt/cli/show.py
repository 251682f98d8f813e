"""``netadapt show``: a genotype as a table, and as a picture with ``--png``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from netadapt.cli.console import human, stdout


def show_command(
    genotype_file: Path = typer.Argument(..., help="Genotype YAML file.", show_default=False),
    input_size: int = typer.Option(None, "--input-size", help="Input side for MAdds [default: the genotype's]."),
    png: Path = typer.Option(None, "--png", help="Also draw the architecture into this PNG file."),
) -> None:
    """Print every layer (stage, layer, op, channels, stride, params, MAdds); draw it with --png."""
    from netadapt import jobs

    shown = jobs.show(genotype_file, input_size=input_size, png=png)
    genotype, breakdown = shown.genotype, shown.breakdown
    table = Table(title=f"{genotype_file} ({genotype.base}, width ×{genotype.width_mult:g})")
    for column in ("stage", "layer", "op", "channels", "stride"):
        table.add_column(column)
    table.add_column("params", justify="right")
    table.add_column("MAdds", justify="right")
    for layer in breakdown.layers:
        table.add_row(
            str(layer.stage), str(layer.layer), layer.op, f"{layer.c_in}→{layer.c_out}", str(layer.stride),
            human(layer.params), human(layer.madds),
        )
    table.add_section()
    table.add_row("total", "", "", "", "", human(breakdown.total_params), human(breakdown.total_madds), style="bold")
    stdout.print(table)
    stdout.print(f"Totals include the stem, head conv and classifier; MAdds at {breakdown.input_size}×{breakdown.input_size}.")
    if genotype.width_mult != 1:
        stdout.print(f"Channels as built at width ×{genotype.width_mult:g}; the genotype's are nominal (width 1).")
    if png is not None:
        stdout.print(f"Wrote {png}", markup=False)
