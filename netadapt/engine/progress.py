"""Rich progress bars with ETA and the live loss (quiet when disabled or off rank 0).

The bar line shows, in this order, what a run's progress is: the description, the bar, the step
count, the ETA, then the loss and the other short fields, cut with an ellipsis where the terminal
ends. A field too long for that line (a search's current architecture, twenty ops) is shown on a
line of its own below the bar, so that it never pushes the count or the ETA out of an 80-column
terminal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column
from rich.text import Text

LONG_FIELD = 24  # characters: a field's text longer than this goes on its own line


class _ProgressWithDetail(Progress):
    """rich's Progress plus one line under the bars (rich documents overriding ``get_renderables``)."""

    detail = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if self.detail:
            yield Text(self.detail, no_wrap=True, overflow="ellipsis")


class TrainingProgress:
    """``with TrainingProgress(total=..., completed=...) as bar: bar.update(iteration, loss=..., ...)``."""

    def __init__(
        self, *, total: int, completed: int = 0, enabled: bool = True, description: str = "train", console: Console | None = None
    ) -> None:
        self.enabled = enabled
        self.progress = _ProgressWithDetail(
            TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True, min_width=len(description))),
            BarColumn(bar_width=20),
            MofNCompleteColumn(table_column=Column(no_wrap=True)),
            TextColumn("ETA", table_column=Column(no_wrap=True)),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
            console=console or Console(stderr=True),
            disable=not enabled,
        )
        self.task = self.progress.add_task(description, total=total, completed=completed, status="")

    def __enter__(self) -> TrainingProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, completed: int, **fields: Any) -> None:
        """Move the bar to ``completed``; ``fields`` are shown as ``name value``, the loss first."""
        texts = {name: f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}" for name, value in fields.items()}
        ordered = sorted(texts, key=lambda name: name != "loss")
        self.progress.detail = "  ".join(texts[name] for name in ordered if len(texts[name]) > LONG_FIELD)
        status = "  ".join(texts[name] for name in ordered if len(texts[name]) <= LONG_FIELD)
        self.progress.update(self.task, completed=completed, status=status)
