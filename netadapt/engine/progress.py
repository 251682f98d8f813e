"""Rich progress bars with ETA and the live loss (quiet when disabled or off rank 0)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn



class TrainingProgress:
    """``with TrainingProgress(total=..., completed=...) as bar: bar.update(iteration, loss=..., ...)``."""

    def __init__(self, *, total: int, completed: int = 0, enabled: bool = True, description: str = "train") -> None:
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self.task = self.progress.add_task(description, total=total, completed=completed, status="")

    def __enter__(self) -> TrainingProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, completed: int, **fields: Any) -> None:
        status = "  ".join(f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}" for name, value in fields.items())
        self.progress.update(self.task, completed=completed, status=status)
