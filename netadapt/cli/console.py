"""Rich consoles and number formatting shared by the commands."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape



class _Console(Console):
    """rich's Console, whose ``print`` writes the control characters of a string (a terminal escape sequence in a path
    or a COCO ``file_name``) as escapes instead of sending them to the terminal; a message's own newlines stay."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(printable(item, keep="\n") if isinstance(item, str) else item for item in objects), **kwargs)


stdout = _Console(highlight=False)
stderr = _Console(stderr=True, highlight=False)


def human(value: float, unit: str = "") -> str:
    """3504872 → '3.50M', 300774272 → '300.77M'."""
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            return f"{value / threshold:.2f}{suffix}{unit}"
    return f"{value:.0f}{unit}"


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    print(json.dumps(data, indent=2))


def printable(text: str, *, keep: str = "") -> str:
    """``text`` with its control characters (but those in ``keep``) written as escapes (``\\n``, ``\\x1b``): a path
    or a COCO ``file_name`` holding a newline or a terminal escape sequence can neither split a one-line message nor
    reach the terminal."""
    return "".join(char if char.isprintable() or char in keep else ascii(char)[1:-1] for char in text)


def warn(message: str) -> None:
    stderr.print(f"[bold yellow]warning:[/] {escape(printable(message))}", soft_wrap=True)  # one line, however long
