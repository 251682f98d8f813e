"""SIGINT and SIGTERM end a run cleanly: at the end of the current iteration it checkpoints and stops.

:func:`interruptible` turns the two signals into a flag that a run's loop reads after each
iteration; the loop then writes ``last.pth`` at that iteration (so ``--resume`` continues exactly
where it stopped) and raises :class:`~netadapt.errors.Interrupted`, which the CLI prints as one
line with exit code 130 (SIGINT) or 143 (SIGTERM), 128 + the signal as shells report it. A second
signal of the same kind while the first is handled acts at once (Python's default: Ctrl-C twice
stops without a checkpoint).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from netadapt.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interruption:
    """The signal received, if any (``requested``), and the error that ends the run on it."""

    def __init__(self) -> None:
        self.signal: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, number: int, frame) -> None:
        if self.signal == number:  # the second Ctrl-C: stop now
            signal.signal(number, signal.SIG_DFL)
            signal.raise_signal(number)
        self.signal = number

    def stop(self, *, iteration: int, checkpoint: Path | None) -> None:
        """Raise :class:`Interrupted` if a signal arrived (after the loop checkpointed at ``iteration``)."""
        if self.signal is None:
            return
        name = signal.Signals(self.signal).name
        saved = f"checkpoint {checkpoint} written; continue with --resume" if checkpoint else "nothing written"
        raise Interrupted(f"{name}: stopped at iteration {iteration}, {saved}", exit_code=128 + self.signal)


@contextlib.contextmanager
def interruptible() -> Iterator[Interruption]:
    """Catch SIGINT/SIGTERM for the length of a run's loop (main thread only; elsewhere a no-op)."""
    interruption = Interruption()
    if threading.current_thread() is not threading.main_thread():
        yield interruption
        return
    previous = {number: signal.signal(number, interruption._handle) for number in SIGNALS}
    try:
        yield interruption
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def ignore_interrupts_in_worker() -> None:
    """In a DataLoader worker: leave Ctrl-C (sent to the whole process group) to the main process,
    which stops the run at the end of an iteration and then shuts its workers down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
