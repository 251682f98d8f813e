"""Options shared by several commands (data, config, output), declared once."""

from __future__ import annotations


import typer

DATA = typer.Option(None, "--data", help="Dataset folder (COCO format: train.json/val.json + images/, or COCO 2017's layout). Default: the embedded demo.")
DATASET = typer.Option(None, "--dataset", help="Dataset plugin [default: coco with --data, else demo].")
CONFIG = typer.Option(None, "--config", help="YAML config file (examples/configs/).")
SET = typer.Option(None, "--set", help="Override a config value: section.field=value (repeatable).")
DEVICE = typer.Option(None, "--device", help="cpu or cuda [default: cuda when available].")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")
JSON = typer.Option(False, "--json", help="Print the result as JSON.")


BASE = typer.Option("mobilenetv2", "--base", help="Base network plugin.")
DETECTOR = typer.Option("ssdlite", "--detector", help="Detector plugin.")
BASE_WEIGHTS = typer.Option(
    None, "--weights", help="Base weights: a .pth, a netadapt checkpoint, 'imagenet', or 'none' (random). "
    "Default on the demo: the base pretrained on demo object crops (cached)."
)
MAX_MEMORY = typer.Option(
    None, "--max-memory", help="Memory the job may use (4G, 512M); by default what the device has: MemAvailable on CPU, free memory on CUDA."
)
AUTO_BATCH = typer.Option(
    False, "--auto-batch", help="When the step's projected peak memory does not fit, run at the largest batch that does, lr scaled linearly."
)
