"""SIGINT and SIGTERM end a run cleanly: at the end of the current iteration it checkpoints and stops.

:func:`interruptible` turns the two signals into a flag that a run's loop reads after each
iteration; the loop then writes ``last.pth`` at that iteration (so ``--resume`` continues exactly
where it stopped) and raises :class:`~netadapt.errors.Interrupted`, which the CLI prints as one
line with exit code 130 (SIGINT) or 143 (SIGTERM), 128 + the signal as shells report it. A second
signal of the same kind while the first is handled acts at once (Python's default: Ctrl-C twice
stops without a checkpoint).

After the last iteration (a training's BatchNorm re-estimation and final evaluation, a search's derive
and final writes) there is no next iteration to wait for: :func:`after_last_iteration` stops that work at
once and says so in the same one line (``last.pth`` holds the last iteration; ``--resume`` does the
work again). DataLoader workers run in a process group of their own (:func:`ignore_interrupts_in_worker`):
SIGTERM or SIGINT sent to the job's whole process group (Ctrl-C, ``timeout``, job managers) reaches the
main process alone, which stops the run with a checkpoint, instead of killing the workers under it.
"""

from __future__ import annotations

import contextlib
import os
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

    def stop(self, *, iteration: int, checkpoint: Path | None, resume_with: str = "--resume") -> None:
        """Raise :class:`Interrupted` if a signal arrived (after the loop checkpointed at ``iteration``); the line says
        to continue with ``resume_with`` (a command's option; what a library call or a cache does instead)."""
        if self.signal is None:
            return
        name = signal.Signals(self.signal).name
        saved = f"checkpoint {checkpoint} written; continue with {resume_with}" if checkpoint else "nothing written"
        raise Interrupted(f"{name}: stopped at iteration {iteration}, {saved}", exit_code=128 + self.signal)


@contextlib.contextmanager
def after_last_iteration(checkpoint: Path | None, *, doing: str) -> Iterator[None]:
    """SIGINT/SIGTERM while a run is ``doing`` its work after the last iteration: the work stops at once with an
    :class:`Interrupted` line saying so (atomic writes leave nothing half-written). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(number: int, frame) -> None:
        for each in SIGNALS:
            signal.signal(each, signal.SIG_DFL)  # a second signal acts at once
        name = signal.Signals(number).name
        held = f"{checkpoint} holds the last iteration: --resume does {doing} again" if checkpoint else "nothing to resume from"
        raise Interrupted(f"{name}: stopped after the last iteration, during {doing}; {held}", exit_code=128 + number)

    previous = {number: signal.signal(number, handle) for number in SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


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
    """In a DataLoader worker: leave Ctrl-C and SIGTERM sent to the job's whole process group (a shell, ``timeout``, a
    job manager) to the main process, which stops the run at the end of an iteration and then shuts its workers down;
    a worker that died of that SIGTERM first would end the run in a traceback, without a checkpoint. The worker moves
    to a process group of its own rather than ignoring SIGTERM, which DataLoader's and multiprocessing's shutdown
    send it (ignored, an exiting run would wait for its workers forever). A worker whose main process dies exits
    (torch's watchdog)."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
