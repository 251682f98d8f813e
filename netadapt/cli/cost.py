"""``netadapt cost``: parameters and MAdds per stage and in total."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from netadapt.cli.console import human, print_json, stdout


def cost_command(
    genotype_file: Path = typer.Argument(..., help="Genotype YAML file.", show_default=False),
    input_size: int = typer.Option(None, "--input-size", help="Square input side in pixels [default: the genotype's input_size]."),
    num_classes: int = typer.Option(None, "--num-classes", help="Classes: classifier outputs [1000], or detector classes with background [81]."),
    detector: str = typer.Option(None, "--detector", help="Count this detector (e.g. ssdlite) on the genotype's backbone instead of the classifier."),
    anchors: str = typer.Option(None, "--anchors", help="Detector anchor scheme (ssdlite: fna or torchvision)."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Count parameters and multiply-adds (fvcore) of a genotype's network, per stage and in total."""
    from netadapt.config import check_input_size
    from netadapt.cost.breakdown import genotype_cost
    from netadapt.errors import ConfigError
    from netadapt.genotype import load_genotype

    genotype = load_genotype(genotype_file)
    if input_size is not None:  # 0 must not mean "the default"
        check_input_size(input_size, "--input-size")
    if num_classes is not None and num_classes < 1:
        raise ConfigError(f"--num-classes must be at least 1, got {num_classes}")
    if detector is not None:
        _detector_cost(genotype_file, genotype, detector, input_size or 320, num_classes or 81, anchors, json_)
        return
    num_classes = num_classes or 1000
    breakdown = genotype_cost(genotype, input_size=input_size, num_classes=num_classes, where=str(genotype_file))
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
    if genotype.width_mult != 1:
        stdout.print(f"Channels as built at width ×{genotype.width_mult:g}; the genotype's are nominal (width 1).")


def _detector_cost(genotype_file: Path, genotype, detector: str, input_size: int, num_classes: int, anchors: str | None, json_: bool) -> None:
    from netadapt.detectors.cost import detector_cost
    from netadapt.detectors.model import DetectorSpec, build_detector, check_detector_memory

    check_detector_memory(genotype, input_size=input_size, num_classes=num_classes, where=str(genotype_file))  # before the class list
    spec = DetectorSpec(
        detector=detector, base=genotype.base, genotype=genotype, class_names=["__background__"] + [str(i) for i in range(1, num_classes)],
        input_size=input_size, options={"anchors": anchors} if anchors else {},
    )
    cost = detector_cost(build_detector(spec), input_size=input_size)
    if json_:
        print_json({"genotype": str(genotype_file), "detector": detector, "num_classes": num_classes} | cost)
        return
    table = Table(title=f"{detector} on {genotype_file} at {input_size}×{input_size}, {num_classes} classes (background included)")
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
