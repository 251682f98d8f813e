"""``netadapt remap``: base weights into another architecture (parameter remapping, Section 2.1)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from netadapt.cli.console import print_json, stdout


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
    from netadapt import jobs

    summary = jobs.remap(genotype_file, base=base, weights=weights, out=out, mode=mode)
    if json_:
        print_json(summary)
    else:
        stdout.print(
            f"Remapped {summary['layers_remapped']} layers from {escape(summary['weights'] or 'a random ' + summary['base'])} "
            f"into {escape(str(genotype_file))} → [bold]{escape(summary['out'])}[/]"
        )
