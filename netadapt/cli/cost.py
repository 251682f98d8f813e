"""``netadapt cost``: parameters and MAdds per stage and in total."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from netadapt.cli.console import human, print_json, stdout


def cost_command(
    genotype_file: Path = typer.Argument(..., help="Genotype YAML file.", show_default=False),
    input_size: int = typer.Option(None, "--input-size", help="Square input side in pixels [default: the genotype's input_size]."),
    num_classes: int = typer.Option(1000, "--num-classes", help="Classifier outputs (counted)."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Count parameters and multiply-adds (fvcore) of a genotype's network, per stage and in total."""
    from netadapt.cost.breakdown import genotype_cost
    from netadapt.genotype import load_genotype

    genotype = load_genotype(genotype_file)
    breakdown = genotype_cost(genotype, input_size=input_size, num_classes=num_classes)
    if json_:
        print_json({"genotype": str(genotype_file)} | breakdown.to_dict())
        return
    table = Table(title=f"{genotype_file} at {breakdown.input_size}×{breakdown.input_size}")
    for column in ("part", "channels", "stride", "ops"):
        table.add_column(column)
    table.add_column("params", justify="right")
    table.add_column("MAdds", justify="right")
    stem, *others = breakdown.others
    table.add_row(stem.label, "", "", "", human(stem.params), human(stem.madds))
    for stage in breakdown.stages:
        table.add_row(stage.label, f"{stage.c_in}→{stage.c_out}", str(stage.stride), stage.op, human(stage.params), human(stage.madds))
    for part in others:
        table.add_row(part.label, "", "", "", human(part.params), human(part.madds))
    table.add_section()
    table.add_row("total", "", "", "", human(breakdown.total_params), human(breakdown.total_madds), style="bold")
    stdout.print(table)
    stdout.print(
        f"Counted: convolutions and the classifier ({num_classes} classes), one multiply-add per MAdd (fvcore). "
        "Left out: " + "; ".join(f"{name} {what}" for name, what in breakdown.left_out.items())
    )
