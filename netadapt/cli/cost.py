"""``netadapt cost``: parameters and MAdds per stage and in total."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from netadapt.cli import options
from netadapt.cli.console import human, print_json, stdout


def cost_command(
    genotype_file: Path = typer.Argument(..., help="Genotype YAML file.", show_default=False),
    input_size: int = typer.Option(None, "--input-size", help="Square input side in pixels [default: the genotype's input_size]."),
    num_classes: int = typer.Option(None, "--num-classes", help="Classes: classifier outputs [1000], or detector classes with background [81]."),
    detector: str = typer.Option(None, "--detector", help="Count this detector (e.g. ssdlite) on the genotype's backbone instead of the classifier."),
    config_file: Path = options.CONFIG,
    overrides: list[str] = typer.Option(
        None, "--set", help="Override a config value (repeatable): the detector's build options are train.detector_options "
        "(ssdlite: --set 'train.detector_options={anchors: torchvision}')."
    ),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Count parameters and multiply-adds (fvcore) of a genotype's network, per stage and in total."""
    from netadapt import jobs

    report = jobs.cost(
        genotype_file, input_size=input_size, num_classes=num_classes, detector=detector, config_file=config_file, overrides=overrides or [],
    )
    if json_:
        print_json(report.to_dict())
        return
    (_print_detector_cost if detector is not None else _print_network_cost)(report)


def _print_network_cost(report) -> None:
    breakdown = report.breakdown
    table = Table(title=f"{report.genotype_file} at {breakdown.input_size}×{breakdown.input_size}")
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
        f"Counted: convolutions and the classifier ({report.num_classes} classes), one multiply-add per MAdd (fvcore). "
        "Left out: " + "; ".join(f"{name} {what}" for name, what in breakdown.left_out.items())
    )
    if report.genotype.width_mult != 1:
        stdout.print(f"Channels as built at width ×{report.genotype.width_mult:g}; the genotype's are nominal (width 1).")


def _print_detector_cost(report) -> None:
    cost, size = report.detector_cost, report.input_size
    table = Table(title=f"{report.detector} on {report.genotype_file} at {size}×{size}, {report.num_classes} classes (background included)")
    table.add_column("part")
    table.add_column("params", justify="right")
    table.add_column("MAdds", justify="right")
    for label, part in cost["parts"].items():
        table.add_row(label, human(part["params"]), human(part["madds"]))
    table.add_section()
    table.add_row("total", human(cost["params"]), human(cost["madds"]), style="bold")
    stdout.print(table)
    stdout.print(
        f"Not counted: {cost['excluded']}. Left out by the MAdds count: "
        + "; ".join(f"{name} {what}" for name, what in cost["left_out"].items()),
        markup=False,
    )
