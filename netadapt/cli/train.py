"""``netadapt train``: train a detector whose backbone is remapped from base weights."""

from __future__ import annotations

from pathlib import Path

import typer

from netadapt.cli import options
from netadapt.cli.console import print_json, stderr, stdout


@options.with_options(network=options.network, source=options.source, machine=options.machine)
def train_command(
    genotype_file: Path = typer.Argument(None, help="Genotype YAML [default: the base network's own].", show_default=False),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="A `netadapt remap` checkpoint: its genotype and weights."),
    epochs: int = typer.Option(None, "--epochs", help="Override train.epochs."),
    batch_size: int = typer.Option(None, "--batch-size", help="Override train.batch_size."),
    lr: float = typer.Option(None, "--lr", help="Override train.lr."),
    out: Path = typer.Option(Path("runs/train"), "--out", help="Run directory (checkpoints, logs, metrics)."),
    resume: bool = options.RESUME,
    force: bool = options.FORCE,
    network: options.Network = None, source: options.Source = None, machine: options.Machine = None,  # the blocks above
) -> None:
    """Train a detector on a COCO-format dataset (default: the embedded demo) and evaluate it."""
    from netadapt import jobs

    result = jobs.train(
        genotype_file, base=network.base, detector=network.detector, weights=network.weights, checkpoint=checkpoint, data=source.data,
        config=source.config(jobs.TrainConfig, "train", {"epochs": epochs, "batch_size": batch_size, "lr": lr}),
        remap=source.config(jobs.RemapConfig, "remap"), out_dir=out, resume=resume, force=force, **machine.job_options(),
        announce=lambda m: (stderr if machine.json else stdout).print(m, markup=False),  # --json: stdout is JSON only
    )
    summary = {
        "out": str(result.out_dir),
        "iterations": result.iterations,
        "final_loss": result.final_loss,
        "seconds": round(result.seconds, 1),
        "metrics": result.metrics,
    }
    if machine.json:
        print_json(summary)
        return
    stdout.print(f"Trained {result.iterations} iterations in {result.seconds:.0f} s, final loss {result.final_loss:.3f} → {result.out_dir}", markup=False)
    if result.metrics:
        stdout.print(f"val mAP {100 * result.metrics['AP']:.1f}, mAP@0.5 {100 * result.metrics['AP50']:.1f}", markup=False)
