"""A run's log: ``log.jsonl`` (one JSON object per record) and TensorBoard when it is installed.

Rank 0 alone writes, and nothing is created before the first record, so a run that fails on its
first batch (bad data) leaves no half-made run directory. On resume, the records the interrupted
run wrote after its last checkpoint are dropped, so the log reads as one uninterrupted run; so is
a torn last line, which a run killed in the middle of a write leaves (with a warning).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from netadapt.errors import NetadaptWarning, RunError
from netadapt.files import output_error, record_output, write_text_atomic


def _records(path: Path) -> list[str]:
    """The log's lines; a torn last line (a run killed while writing it) is dropped with a warning,
    anything else that is not JSON is a RunError naming the line."""
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                warnings.warn(f"{path}: dropped its last line, torn by an interrupted write: {line[:60]!r}", NetadaptWarning, stacklevel=4)
                return lines[:-1]
            raise RunError(f"{path}: line {number} is not JSON; cannot resume this run's log") from None
        if not isinstance(record, dict):
            raise RunError(f"{path}: line {number} is not a JSON object; cannot resume this run's log")
    return lines


class RunLog:
    def __init__(self, out_dir: Path, *, keep_until: int, enabled: bool) -> None:
        self.enabled = enabled
        self.out_dir = out_dir
        self.path = out_dir / "log.jsonl"
        self.keep_until = keep_until
        self.writer = None
        self.opened = False
        if enabled and self.path.exists():
            kept = [line for line in _records(self.path) if json.loads(line).get("iteration", 0) <= keep_until]
            write_text_atomic(self.path, "".join(line + "\n" for line in kept))

    def _open(self) -> None:
        self.opened = True
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            record_output(self.path)  # netadapt's file: a later run may truncate it (engine/rundir.py)
        except OSError as error:
            raise output_error(self.path, error) from None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self.writer = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"), purge_step=self.keep_until + 1)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if not self.opened:
            self._open()
        try:
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError as error:  # a full disk: one line, the last checkpoint stays resumable
            raise output_error(self.path, error) from None
        if self.writer is not None:
            group, scalars = ("eval", record["eval"]) if "eval" in record else ("train", record)
            for name, value in scalars.items():
                if isinstance(value, float):
                    self.writer.add_scalar(f"{group}/{name}", value, record["iteration"])

    def last(self, key: str) -> Any:
        """The last value of ``key`` in the log (a resumed run's earlier records included), or None."""
        if not self.enabled or not self.path.is_file():
            return None
        for line in reversed(_records(self.path)):
            record = json.loads(line)
            if key in record:
                return record[key]
        return None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
