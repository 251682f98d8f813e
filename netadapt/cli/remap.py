"""``netadapt remap``: base weights into another architecture (parameter remapping, Section 2.1)."""

from __future__ import annotations

from pathlib import Path

import typer

from rich.markup import escape

from netadapt.cli.console import print_json, stdout, warn


def remap_command(
    genotype_file: Path = typer.Argument(..., help="Target genotype YAML file.", show_default=False),
    base: str = typer.Option(None, "--base", help="Base network plugin [default: the genotype's 'base']."),
    weights: str = typer.Option(
        None, "--weights", help="Base weights: a torchvision-format .pth, a netadapt checkpoint, or 'imagenet'."
    ),
    out: Path = typer.Option(None, "--out", help="Output checkpoint [default: <genotype>_remapped.pth]."),
    mode: str = typer.Option(
        "fna", "--mode", help="fna: the paper's copy rules; preserve: inserted layers start as the identity, narrower layers keep "
        "their most important channels (the base's function kept)."
    ),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Remap a base network's weights into GENOTYPE and write a netadapt checkpoint."""
    from netadapt.errors import GenotypeError
    from netadapt.files import check_output_file
    from netadapt.genotype import load_genotype
    from netadapt.remap.base import remap_base
    from netadapt.remap.preserve import check_mode
    from netadapt.weights import read_weights, save_model_checkpoint

    genotype = load_genotype(genotype_file)
    if base is not None and base != genotype.base:
        raise GenotypeError(f"{genotype_file}: field 'base' is {genotype.base!r} but --base is {base!r}")
    base = genotype.base
    check_mode(mode)
    weights_file = Path(weights) if weights not in (None, "imagenet") else None
    out = check_output_file(out or Path(f"{genotype_file.stem}_remapped.pth"), inputs=[genotype_file, weights_file])
    if weights is None:
        warn(
            f"no --weights given: remapping a RANDOMLY INITIALISED {base}. The result is no better than random "
            "initialisation; pass --weights FILE (or 'imagenet' when online) to adapt pretrained weights."
        )
    source = read_weights(weights, base_name=base) if weights is not None else None
    result = remap_base(genotype, base_name=base, weights=source, mode=mode)
    save_model_checkpoint(out, base_name=base, genotype=genotype, network=result.network, num_classes=result.num_classes)
    summary = {
        "genotype": str(genotype_file),
        "base": base,
        "weights": source.source if source else None,
        "layers_remapped": len(result.report.copied),
        "layers_ignored": len(result.report.ignored),
        "mode": mode,
        "layers_inserted_as_identity": len(result.report.identity),
        "out": str(out),
    }
    if json_:
        print_json(summary)
    else:
        stdout.print(
            f"Remapped {summary['layers_remapped']} layers from {escape(summary['weights'] or 'a random ' + base)} "
            f"into {escape(str(genotype_file))} → [bold]{escape(str(out))}[/]"
        )
