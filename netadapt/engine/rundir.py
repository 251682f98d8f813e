"""One run per run directory: what ``--out`` may hold before a run starts, and who writes into it.

:func:`run_directory` claims a run directory for the length of a run:

- a directory holding a resumable run (``last.pth``) is not started over without ``resume``
  (it would truncate ``log.jsonl`` and overwrite ``last.pth`` with an earlier iteration); ``force``
  starts over, deleting that ``last.pth`` first;
- an advisory lock, ``.netadapt.lock`` holding the owner's pid (``fcntl.flock``, which the kernel
  releases when the owner dies), keeps a second run out while the first writes; a lock file left
  by a dead process is taken over with a warning;
- the directory is netadapt's: an existing folder holding files that its manifest
  (``.netadapt-manifest``, :mod:`netadapt.files`) does not list is refused, so a run never
  replaces a user's ``genotype.yaml`` or ``log.jsonl``; what the run writes there is listed as the run's
  (other commands do not replace it: :func:`~netadapt.files.check_outputs`). A run directory
  written before manifests existed (no manifest, a ``last.pth`` that is a netadapt run's checkpoint)
  is adopted with a warning (:func:`adopt_unlisted_run`);
- temporary files that an atomic write of a killed run left (``.last.pth.*.tmp``) are removed, and
  only those of files the manifest lists (a user's own ``.*.tmp`` is never touched): under the lock
  no other process can be writing them.

Run directories only ever delete what netadapt's own manifest lists.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

from netadapt.files import (
    MANIFEST_NAME, RESUME_KEYS, check_output_dir, holding_run, load_torch_file, output_error, remove_if_unused, temporaries,
    written_by_netadapt,
)
from netadapt.errors import NetadaptWarning, OutputError, RunError, WeightsError

LOCK_NAME = ".netadapt.lock"
STATE_NAME = "last.pth"


def check_resumable(out_dir: Path) -> None:
    """``--resume`` needs ``OUT/last.pth``: without it (a typo in ``--out``) the run would silently start anew."""
    if not (Path(out_dir) / STATE_NAME).is_file():
        raise RunError(f"--resume: {Path(out_dir) / STATE_NAME} does not exist: there is no run to resume (check --out)")


@contextlib.contextmanager
def run_directory(
    out_dir: str | Path, *, resume: bool, force: bool = False, enabled: bool = True, force_option: str | None = "--force",
) -> Iterator[Path]:
    """Claim ``out_dir`` for one run (see the module docstring); ``enabled=False`` (ranks other than 0) only checks.
    ``force_option``: the command's option that starts over, named in the refusal (``None``: it has none, ``adapt``)."""
    out_dir = Path(out_dir)
    state = out_dir / STATE_NAME
    adopted = adopt_unlisted_run(out_dir, write=enabled)  # ranks other than 0 only count them as the run's
    check_foreign_files(out_dir, also=adopted)
    if state.is_file() and not resume and not force:
        start_over = f", start over with {force_option}," if force_option else ""
        raise RunError(
            f"{out_dir} holds a run that can be resumed ({STATE_NAME}): continue it with --resume{start_over} or choose another --out"
        )
    if not enabled:
        yield out_dir
        return
    created = not out_dir.exists()
    check_output_dir(out_dir)
    try:
        handle = _lock(out_dir / LOCK_NAME)
    except OSError as error:  # a full disk or a read-only folder: nothing of ours is left behind
        _remove_empty(out_dir, created)
        raise output_error(out_dir / LOCK_NAME, error) from None
    holding_run(out_dir, True)
    try:
        for stale in temporaries(out_dir):
            stale.unlink(missing_ok=True)
        if force and not resume:
            state.unlink(missing_ok=True)
        yield out_dir
    finally:
        holding_run(out_dir, False)
        (out_dir / LOCK_NAME).unlink(missing_ok=True)
        os.close(handle)
        _remove_empty(out_dir, created)


def adopt_unlisted_run(out_dir: Path, *, write: bool = True) -> set[str]:
    """A run directory that an earlier netadapt wrote before manifests existed: no manifest, and a ``last.pth`` that
    loads as a netadapt run's checkpoint (``format`` netadapt-train or netadapt-search). Its files are listed as that
    run's (with a warning; ``write=False``: only returned), so that it can be resumed or started over; anything else
    without a manifest stays foreign. Returns the names adopted."""
    if not out_dir.is_dir() or (out_dir / MANIFEST_NAME).exists() or not (out_dir / STATE_NAME).is_file():
        return set()
    try:
        state = load_torch_file(out_dir / STATE_NAME, what="checkpoint")
    except WeightsError:
        return set()
    if not (isinstance(state, dict) and state.get("format") in RESUME_KEYS):
        return set()
    files = {entry.name for entry in out_dir.iterdir() if entry.is_file() and entry.name != LOCK_NAME}
    torn = {name for name in files if re.fullmatch(r"\..+\.[a-z0-9_]{8}\.tmp", name)}
    names = sorted(files - torn | {name[1:-13] for name in torn})  # a killed write's temporary is removed as one, not adopted
    if write:
        try:
            with open(out_dir / MANIFEST_NAME, "x", encoding="utf-8") as handle:
                handle.writelines(json.dumps(["run", name]) + "\n" for name in names)
        except FileExistsError:
            return set(names)  # another process adopted it meanwhile
        except OSError as error:
            raise output_error(out_dir / MANIFEST_NAME, error) from None
        warnings.warn(
            f"{out_dir}: a {state['format']} run directory written before netadapt listed its files; adopted: "
            f"{MANIFEST_NAME} now lists its {len(names)} files as the run's", NetadaptWarning, stacklevel=4,
        )
    return set(names)


def check_foreign_files(out_dir: Path, *, also: set[str] = frozenset()) -> None:
    """Refuse a run directory holding files netadapt did not write (not in its manifest, nor ``also``): the run would
    replace them."""
    if not out_dir.is_dir():
        return
    ours = written_by_netadapt(out_dir) | set(also) | {LOCK_NAME, MANIFEST_NAME} | {stale.name for stale in temporaries(out_dir)}
    foreign = sorted(entry.name for entry in out_dir.iterdir() if entry.name not in ours and not entry.is_dir())
    if foreign:
        shown = ", ".join(repr(name) for name in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputError(
            f"{out_dir}: holds files netadapt did not write ({shown}; not in its {MANIFEST_NAME}); "
            "a run there could replace or delete them: choose an empty or new --out"
        )


def _remove_empty(out_dir: Path, created: bool) -> None:
    """A run that failed before writing anything leaves no run directory (nor its manifest)."""
    if created:
        remove_if_unused(out_dir, also=(LOCK_NAME,))


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
    try:
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
    except OSError:  # a full disk: give the lock back rather than leave a folder holding only it
        path.unlink(missing_ok=True)
        os.close(handle)
        raise
    return handle
