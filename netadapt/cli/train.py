"""``netadapt train``: train a detector whose backbone is remapped from base weights."""

from __future__ import annotations

from pathlib import Path

import typer

from netadapt.cli import options
from netadapt.cli.console import print_json, stderr, stdout


def train_command(
    genotype_file: Path = typer.Argument(None, help="Genotype YAML [default: the base network's own].", show_default=False),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="A `netadapt remap` checkpoint: its genotype and weights."),
    base: str = options.BASE,
    weights: str = options.BASE_WEIGHTS,
    detector: str = options.DETECTOR,
    data: Path = options.DATA,
    dataset: str = options.DATASET,
    config_file: Path = options.CONFIG,
    overrides: list[str] = options.SET,
    epochs: int = typer.Option(None, "--epochs", help="Override train.epochs."),
    batch_size: int = typer.Option(None, "--batch-size", help="Override train.batch_size."),
    lr: float = typer.Option(None, "--lr", help="Override train.lr."),
    out: Path = typer.Option(Path("runs/train"), "--out", help="Run directory (checkpoints, logs, metrics)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.pth."),
    force: bool = typer.Option(False, "--force", help="Start over in an OUT that holds a resumable run (its last.pth is deleted)."),
    device: str = options.DEVICE,
    max_memory: str = options.MAX_MEMORY,
    auto_batch: bool = options.AUTO_BATCH,
    quiet: bool = options.QUIET,
    json_: bool = options.JSON,
) -> None:
    """Train a detector on a COCO-format dataset (default: the embedded demo) and evaluate it."""
    from netadapt import jobs
    from netadapt.config import RemapConfig, TrainConfig
    from netadapt.genotype import load_genotype

    source = jobs.Data(data, dataset)
    flags = {"epochs": epochs, "batch_size": batch_size, "lr": lr}
    config = source.config(TrainConfig, "train", config_file=config_file, overrides=overrides or [], flags=flags)
    remap = source.config(RemapConfig, "remap", config_file=config_file, overrides=overrides or [])
    result = jobs.train(
        load_genotype(genotype_file) if genotype_file else None, base=base, detector=detector, weights=weights, checkpoint=checkpoint,
        data=source, config=config, remap=remap, out_dir=out, resume=resume, force=force, device=device, progress=not quiet,
        max_memory=max_memory, auto_batch=auto_batch,
        announce=lambda m: (stderr if json_ else stdout).print(m, markup=False),  # --json: stdout is JSON only
    )
    summary = {
        "out": str(result.out_dir),
        "iterations": result.iterations,
        "final_loss": result.final_loss,
        "seconds": round(result.seconds, 1),
        "metrics": result.metrics,
    }
    if json_:
        print_json(summary)
        return
    stdout.print(f"Trained {result.iterations} iterations in {result.seconds:.0f} s, final loss {result.final_loss:.3f} → {result.out_dir}", markup=False)
    if result.metrics:
        stdout.print(f"val mAP {100 * result.metrics['AP']:.1f}, mAP@0.5 {100 * result.metrics['AP50']:.1f}", markup=False)
