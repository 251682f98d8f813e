"""One run per run directory: what ``--out`` may hold before a run starts, and who writes into it.

:func:`run_directory` claims a run directory for the length of a run:

- a directory holding a resumable run (``last.pth``) is not started over without ``resume``
  (it would truncate ``log.jsonl`` and overwrite ``last.pth`` with an earlier iteration); ``force``
  starts over, deleting that ``last.pth`` first;
- an advisory lock, ``.netadapt.lock`` holding the owner's pid (``fcntl.flock``, which the kernel
  releases when the owner dies), keeps a second run out while the first writes; a lock file left
  by a dead process is taken over with a warning;
- temporary files that an atomic write of a killed run left (``.last.pth.*.tmp``) are removed:
  under the lock no other process can be writing them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from netadapt.engine.files import TEMPORARY_GLOB, check_output_dir
from netadapt.errors import NetadaptWarning, RunError

LOCK_NAME = ".netadapt.lock"
STATE_NAME = "last.pth"


def check_resumable(out_dir: Path) -> None:
    """``--resume`` needs ``OUT/last.pth``: without it (a typo in ``--out``) the run would silently start anew."""
    if not (Path(out_dir) / STATE_NAME).is_file():
        raise RunError(f"--resume: {Path(out_dir) / STATE_NAME} does not exist: there is no run to resume (check --out)")


@contextlib.contextmanager
def run_directory(out_dir: str | Path, *, resume: bool, force: bool = False, enabled: bool = True) -> Iterator[Path]:
    """Claim ``out_dir`` for one run (see the module docstring); ``enabled=False`` (ranks other than 0) only checks."""
    out_dir = Path(out_dir)
    state = out_dir / STATE_NAME
    if state.is_file() and not resume and not force:
        raise RunError(
            f"{out_dir} holds a run that can be resumed ({STATE_NAME}): continue it with --resume, "
            "start over with --force, or choose another --out"
        )
    if not enabled:
        yield out_dir
        return
    created = not out_dir.exists()
    check_output_dir(out_dir)
    handle = _lock(out_dir / LOCK_NAME)
    try:
        for stale in out_dir.glob(TEMPORARY_GLOB):
            stale.unlink(missing_ok=True)
        if force and not resume:
            state.unlink(missing_ok=True)
        yield out_dir
    finally:
        (out_dir / LOCK_NAME).unlink(missing_ok=True)
        os.close(handle)
        if created:  # a run that failed before writing anything leaves no run directory
            with contextlib.suppress(OSError):
                out_dir.rmdir()


def _lock(path: Path) -> int:
    """Take the advisory lock at ``path`` and write our pid into it; a live owner is a RunError."""
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(handle, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(handle)
            raise RunError(
                f"{path.parent} is in use by another netadapt run (pid {owner}): wait for it to end or choose another --out"
            ) from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(handle).st_ino:
                break  # the file we locked is still the lock file (its owner did not just remove it)
        os.close(handle)
    previous = os.pread(handle, 32, 0).decode(errors="replace").strip()
    if previous:
        warnings.warn(
            f"{path.parent}: taking over the lock of process {previous}, which ended without releasing it", NetadaptWarning, stacklevel=3
        )
    os.ftruncate(handle, 0)
    os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
    return handle
