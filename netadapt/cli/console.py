"""Rich consoles and number formatting shared by the commands."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)


def human(value: float, unit: str = "") -> str:
    """3504872 → '3.50M', 300774272 → '300.77M'."""
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            return f"{value / threshold:.2f}{suffix}{unit}"
    return f"{value:.0f}{unit}"


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    print(json.dumps(data, indent=2))


def warn(message: str) -> None:
    stderr.print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True)  # one line, however long
