"""A run's log: ``log.jsonl`` (one JSON object per record) and TensorBoard when it is installed.

Rank 0 alone writes, and nothing is created before the first record, so a run that fails on its
first batch (bad data) leaves no half-made run directory. On resume, the records the interrupted
run wrote after its last checkpoint are dropped, so the log reads as one uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from netadapt.engine.files import write_text_atomic


class RunLog:
    def __init__(self, out_dir: Path, *, keep_until: int, enabled: bool) -> None:
        self.enabled = enabled
        self.out_dir = out_dir
        self.path = out_dir / "log.jsonl"
        self.keep_until = keep_until
        self.writer = None
        self.opened = False
        if enabled and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line).get("iteration", 0) <= keep_until]
            write_text_atomic(self.path, "".join(line + "\n" for line in kept))

    def _open(self) -> None:
        self.opened = True
        self.out_dir.mkdir(parents=True, exist_ok=True)
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
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            group, scalars = ("eval", record["eval"]) if "eval" in record else ("train", record)
            for name, value in scalars.items():
                if isinstance(value, float):
                    self.writer.add_scalar(f"{group}/{name}", value, record["iteration"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
