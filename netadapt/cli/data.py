"""``netadapt data``: dataset utilities (``netadapt data demo`` writes the embedded demo dataset)."""

from __future__ import annotations

from pathlib import Path

import typer

from netadapt.cli.console import stdout

app = typer.Typer(help="Dataset utilities.", no_args_is_help=True)


@app.command("demo")
def demo_command(
    out: Path = typer.Option(..., "--out", help="Folder to write (must not exist or be empty)."),
    seed: int = typer.Option(0, "--seed"),
    train: int = typer.Option(400, "--train", help="Train images."),
    val: int = typer.Option(100, "--val", help="Val images."),
    image_size: int = typer.Option(320, "--image-size"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset."),
) -> None:
    """Write the embedded demo detection dataset (COCO format, deterministic from the seed)."""
    from netadapt import jobs
    from netadapt.errors import NetadaptError

    try:
        path = jobs.demo_dataset(out, seed=seed, train=train, val=val, image_size=image_size, overwrite=overwrite)
    except NetadaptError:
        raise
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    stdout.print(f"Wrote {train} train and {val} val images with train.json and val.json to {path}", markup=False)
