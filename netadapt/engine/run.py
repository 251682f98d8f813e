"""A run's life around the one loop (:mod:`netadapt.engine.loop`), the same for every resumable caller.

A run directory's ``last.pth`` holds the resumable state: ``{"format", "config"}``, what the caller adds
(the detector's spec, the search's cost table), the step's ``state_dict()`` and ``{"iteration"}``. :class:`Run`

- loads it with ``resume`` (:func:`~netadapt.files.load_resume_state`: a file of another kind is refused) and refuses a
  config that differs from the one the run started with (:func:`~netadapt.engine.resume.check_same_config`);
- hands it to the step (:meth:`restore`: ``step.load_state_dict(state)``) and says where the loop starts;
- writes it atomically (:func:`~netadapt.files.save_torch_atomic`) at the loop's checkpoint cadence, on rank 0;
- opens the run's ``log.jsonl`` (:class:`~netadapt.engine.runlog.RunLog`), kept up to the resumed iteration.

The step owns what an iteration changes (weights, optimisers, schedule, precision's scaler, generators), so the loop
saves and restores every step the same way; signals, the progress bar and the cadence are the loop's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from netadapt.engine import distributed
from netadapt.engine.loop import Loop
from netadapt.engine.resume import check_same_config
from netadapt.engine.runlog import RunLog
from netadapt.files import load_resume_state, save_torch_atomic


class ResumableStep(Protocol):
    """A step the loop runs (``step(batch, at)``) whose state a checkpoint holds."""

    def __call__(self, batch: Any, at: Any) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Run:
    """``out_dir``'s resumable state for a run of ``format`` with ``config`` (its ``section`` of the config file)."""

    def __init__(self, out_dir: str | Path, *, format: str, config: Any, section: str, resume: bool, context: distributed.Context) -> None:
        self.out_dir, self.format, self.config, self.context = Path(out_dir), format, config, context
        self.path = self.out_dir / "last.pth"
        self.state = load_resume_state(self.path, format=format) if resume else None
        if self.state is not None:
            check_same_config(self.state, config, self.path, section=section)

    @property
    def start(self) -> int:
        """The iteration the loop starts from: the checkpoint's, else 0."""
        return self.state["iteration"] if self.state is not None else 0

    def restore(self, step: ResumableStep) -> None:
        """The checkpoint's state into ``step`` (nothing on a fresh run)."""
        if self.state is not None:
            step.load_state_dict(self.state)

    def log(self) -> RunLog:
        return RunLog(self.out_dir, keep_until=self.start, enabled=self.context.is_main)

    def saver(
        self, step: ResumableStep, *, extra: Callable[[], dict[str, Any]] | None = None, first: Callable[[], None] | None = None,
    ) -> Callable[[int], None]:
        """What writes ``last.pth`` at an iteration (module docstring); ``first()`` runs before the first write (a file
        that belongs with the run's first checkpoint: a run that fails before it leaves nothing behind)."""
        pending = [first] if first is not None else []

        def save(done: int) -> None:
            while pending:
                pending.pop()()
            head = {"format": self.format, "config": asdict(self.config)} | (extra() if extra is not None else {})
            save_torch_atomic(head | step.state_dict() | {"iteration": done}, self.path)

        return save

    def loop(
        self, step: ResumableStep, *, log: RunLog, log_every: int, checkpoint_every: int, extra: Callable[[], dict[str, Any]] | None = None,
        first: Callable[[], None] | None = None, **options: Any,
    ) -> Loop:
        """The one loop over ``step``, logging to ``log`` and checkpointing here; ``options`` are :class:`Loop`'s
        (``total``, ``iterations_per_epoch``, ``batches``, ``description``, ``progress``, ``shown``, ``end_of_epoch``,
        ``resume_with``)."""
        return Loop(
            context=self.context, log=log, log_every=log_every, save=self.saver(step, extra=extra, first=first),
            checkpoint_every=checkpoint_every, checkpoint_path=self.path, **options,
        )
