"""Atomic file output, and the rule for what an output may replace.

Every file netadapt writes (genotypes, checkpoints, results, metrics, reports, pictures) goes through
:func:`atomic_path`: the content is written to a temporary file in the same directory, then moved
into place with ``os.replace`` (atomic on POSIX), and the temporary file is removed if writing fails.
Any failure on the way (a full disk, a read-only folder, torch's ``inline_container`` errors) is one
:class:`~netadapt.errors.OutputError` line naming the file.

Before it writes, :func:`atomic_path` lists the file's name in its folder's manifest,
``.netadapt-manifest`` (one JSON line per file, appended: the name, or ``["run", name]`` for a file a
run wrote into the run directory it holds). The manifest is how netadapt knows what it wrote:
:func:`check_outputs` (the one rule for output files, checked before any work) refuses an output that
is an input of the same command, an existing file the manifest does not list, and a run's file; run
directories (:mod:`netadapt.engine.rundir`) delete only what it lists. Caches (``listed=False``) have none.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

MANIFEST_NAME = ".netadapt-manifest"
_RUNNING: set[Path] = set()  # run directories this process holds (engine/rundir.py): what it writes there is the run's


def output_error(path: str | Path, error: BaseException) -> Exception:
    """A failure met writing ``path`` as one line (``--out`` a file, a read-only folder, a full disk, torch's
    ``RuntimeError: [enforce fail at inline_container.cc]``)."""
    from netadapt.errors import OutputError, describe

    if isinstance(error, OSError):
        reason = error.strerror or str(error)
    else:  # torch's writer reports a full disk as RuntimeError("[enforce fail at inline_container.cc:...] unexpected pos ...")
        reason = describe(error)
        if "unexpected pos" in reason or "file write failed" in reason:
            reason += " (is the disk full?)"
    return OutputError(f"{path}: cannot write: {reason}")


def manifest(folder: str | Path) -> list[Any]:
    """The lines of ``folder``'s manifest, decoded; ``[]`` when it has none."""
    try:
        text = (Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    entries = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):  # a line torn by a killed writer lists nothing
            entries.append(json.loads(line))
    return entries


def written_by_netadapt(folder: str | Path) -> set[str]:
    """Names of the files netadapt wrote (or began to write) into ``folder``, by its manifest."""
    return {entry for entry in manifest(folder) if isinstance(entry, str)} | run_files(folder)


def run_files(folder: str | Path) -> set[str]:
    """Names of the files a run wrote into its run directory ``folder`` (``["run", name]`` lines): its state and results."""
    return {entry[1] for entry in manifest(folder) if isinstance(entry, list) and len(entry) == 2 and entry[0] == "run"}


def holding_run(folder: Path, held: bool) -> None:
    """Mark ``folder`` as a run directory this process holds (or no longer holds): :func:`record_output` lists the
    files written there as the run's."""
    (_RUNNING.add if held else _RUNNING.discard)(folder.resolve())


def record_output(path: str | Path) -> bool:
    """List ``path`` in its folder's manifest, once (as a run's file in a run directory this process holds); the
    folder must exist. True when this made the manifest."""
    path = Path(path)
    folder = path.parent
    entry = ["run", path.name] if folder.resolve() in _RUNNING else path.name
    if entry in manifest(folder):
        return False
    created = not (folder / MANIFEST_NAME).exists()
    handle = os.open(folder / MANIFEST_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:  # one short O_APPEND write: concurrent writers do not interleave within a line
        os.write(handle, (json.dumps(entry) + "\n").encode())
    except OSError:
        if created:
            (folder / MANIFEST_NAME).unlink(missing_ok=True)
        raise
    finally:
        os.close(handle)
    return created


def temporaries(folder: Path) -> Iterator[Path]:
    """Temporary files that :func:`atomic_path` left in ``folder`` (killed writers) for files its manifest lists;
    a user's own ``.*.tmp`` is never one of them."""
    for name in written_by_netadapt(folder):
        pattern = re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp")  # mkstemp's prefix + 8 random + suffix
        for candidate in folder.glob(f".{glob.escape(name)}.*.tmp"):
            if pattern.fullmatch(candidate.name) and candidate.is_file():
                yield candidate


def _same_file(first: Path, second: Path) -> bool:
    with contextlib.suppress(OSError):
        if first.exists() and second.exists():
            return os.path.samefile(first, second)
    return first.resolve() == second.resolve()


def check_outputs(outputs: Iterable[str | Path], *, inputs: Iterable[str | Path | None] = ()) -> None:
    """The one rule for output files, checked before any work starts: an output may not be

    - an input of the same command (``predict pics/a.png --out pics``, ``export m.pth --out m.pth``);
    - an existing file netadapt did not write (its folder's manifest does not list it);
    - a file a run wrote into its run directory (``remap G.yaml --out RUN/last.pth``): only that run writes it.
    """
    from netadapt.errors import OutputError

    sources = [Path(source) for source in inputs if source is not None]
    for output in map(Path, outputs):
        for source in sources:
            if _same_file(output, source):
                raise OutputError(f"{output}: is also an input of this command ({source}); writing it would destroy the input: choose another --out")
        if output.is_dir():
            raise output_error(output, IsADirectoryError(21, "is a directory (give a file name)"))
        if output.exists() or output.is_symlink():
            if output.name not in written_by_netadapt(output.parent):
                raise OutputError(
                    f"{output}: exists and netadapt did not write it (it is not in {output.parent / MANIFEST_NAME}); "
                    "it is not replaced: move it or choose another --out"
                )
        if output.name in run_files(output.parent):
            raise OutputError(f"{output}: belongs to the netadapt run in {output.parent}; only that run writes it: choose another --out")


@contextlib.contextmanager
def atomic_path(path: str | Path, *, listed: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on failure delete it.

    Any failure on the way (no such folder, a file where a folder should be, no space, no permission,
    torch's writer errors) is an :class:`~netadapt.errors.OutputError` naming ``path``; a NetadaptError
    or an interruption raised by the caller's writing passes through unchanged. ``listed=False`` (the
    caches under ``NETADAPT_CACHE``, which are netadapt's alone) writes no manifest line.
    """
    from netadapt.errors import NetadaptError, loader_worker_died

    path = Path(path)
    made_manifest = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        made_manifest = listed and record_output(path)  # before the temporary exists: a killed writer's leftover is listed
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        _forget(path, made_manifest)
        raise output_error(path, error) from None
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        os.chmod(temporary_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(temporary_path, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temporary_path.unlink(missing_ok=True)
        _forget(path, made_manifest)
        if isinstance(error, OSError):
            raise output_error(path, error) from None
        if isinstance(error, Exception) and not isinstance(error, NetadaptError) and not loader_worker_died(error):
            raise output_error(path, error) from error  # torch.save's RuntimeError on a full disk
        raise  # an interruption, or a loader worker's death that torch's SIGCHLD handler raised here: not the write's


def _forget(path: Path, made_manifest: bool) -> None:
    """A first write into a folder failed: the manifest it made goes too (the folder is left as it was)."""
    if made_manifest and not path.exists():
        with contextlib.suppress(OSError):
            (path.parent / MANIFEST_NAME).unlink()


def check_output_file(path: str | Path, *, inputs: Iterable[str | Path | None] = ()) -> Path:
    """Check up front, before any work, that a file can be written at ``path`` (its folder is created) and
    that :func:`check_outputs` allows it."""
    path = Path(path)
    check_outputs([path], inputs=inputs)
    probe = path.with_name(f"{path.name}.check")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{probe.name}.", suffix=".tmp")
        os.close(handle)
        os.unlink(temporary)
    except OSError as error:
        raise output_error(path, error) from None
    return path


@contextlib.contextmanager
def output_folder(path: str | Path) -> Iterator[Path]:
    """:func:`check_output_dir` for the length of a command: a folder it made is removed again, if still
    empty, when the command fails (a refused ``eval CKPT`` leaves no empty ``eval/``)."""
    path = Path(path)
    created = not path.exists()
    check_output_dir(path)
    try:
        yield path
    except BaseException:
        if created:
            remove_if_unused(path)
        raise


def remove_if_unused(folder: Path, *, also: Iterable[str] = ()) -> None:
    """Remove ``folder`` if it holds nothing but its manifest (and the names in ``also``) and no file was
    written: what a command that failed before writing leaves."""
    with contextlib.suppress(OSError):
        entries = set(os.listdir(folder))
        if entries <= {MANIFEST_NAME, *also} and not any((folder / name).exists() for name in written_by_netadapt(folder)):
            (folder / MANIFEST_NAME).unlink(missing_ok=True)
            folder.rmdir()


def remove_outputs(path: str | Path) -> list[Path]:
    """Delete what netadapt wrote at ``path`` and nothing else: a file its folder's manifest lists, or, for a folder,
    the files its manifests list, folder by folder, and the folders this leaves empty. Returns what was left in place
    (files netadapt did not write), for the caller to name in a warning."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        if path.name in written_by_netadapt(path.parent):
            path.unlink()
            return []
        return [path]
    if not path.is_dir():
        return []
    left = []
    for entry in sorted(path.iterdir()):
        if entry.name != MANIFEST_NAME:
            left += remove_outputs(entry)
    remove_if_unused(path)
    return left


def check_output_dir(path: str | Path) -> Path:
    """Check up front that ``path`` is, or can be made, a folder netadapt can write into."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise output_error(path, error) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise output_error(path, PermissionError(13, "Permission denied"))
    return path


def write_text_atomic(path: str | Path, text: str, *, listed: bool = True) -> None:
    with atomic_path(path, listed=listed) as temporary:
        temporary.write_text(text)


def write_json_atomic(path: str | Path, obj: Any, *, listed: bool = True) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n", listed=listed)


def save_torch_atomic(obj: Any, path: str | Path, *, listed: bool = True) -> None:
    import torch

    with atomic_path(path, listed=listed) as temporary:
        torch.save(obj, temporary)


def load_torch_file(path: str | Path, *, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; a missing or unreadable file is one WeightsError line."""
    import torch

    from netadapt.errors import WeightsError

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch errors alike mean "not such a file"
        raise WeightsError(f"{path}: not a readable {what} ({_load_failure(error)})") from None


def _load_failure(error: Exception) -> str:
    """Why torch.load failed, without torch's advice to retry with ``weights_only=False``: for a file
    of unknown origin that advice is the way to run its code."""
    if type(error).__name__ == "UnpicklingError" and "weights only" in str(error).lower():
        lines = [line.strip() for line in str(error).splitlines()]
        blocked = next((line for line in lines if "GLOBAL" in line), None)
        if blocked:  # a pickle naming a Python callable: what a malicious file does
            return f"it holds Python objects other than tensors, which are never loaded: {blocked}"
        operand = next((line for line in lines if line.startswith("Unsupported")), "unreadable pickle data")
        return f"not a PyTorch weights file: {operand}"
    detail = next((line for line in str(error).splitlines() if line.strip() and "weights_only" not in line), "")
    return f"{type(error).__name__}{': ' + detail if detail else ''}"


def load_resume_state(path: Path, *, format: str) -> dict[str, Any] | None:
    """The resumable state a run left in ``path`` (``None`` if there is none), checked to be of ``format``."""
    from netadapt.errors import WeightsError

    if not path.is_file():
        return None
    state = load_torch_file(path, what="checkpoint to resume from")
    if not isinstance(state, dict) or state.get("format") != format or "iteration" not in state:
        raise WeightsError(f"{path}: not a {format} checkpoint, cannot resume from it")
    missing = [key for key in RESUME_KEYS.get(format, ()) if key not in state]
    if missing:
        raise WeightsError(f"{path}: a {format} checkpoint lacking {', '.join(missing)}: cannot resume from it")
    return state


# What each run's last.pth must hold to be resumed (engine/run.py writes them: the train and search steps' state).
RESUME_KEYS = {
    "netadapt-train": ("spec", "config", "model", "optimizer", "schedule", "iteration"),
    "netadapt-search": (
        "config", "detector", "alpha", "optimizer", "alpha_optimizer", "schedule", "generator", "iteration", "history",
    ),
}


@functools.cache
def _umask() -> int:
    """The process's umask, read when a file is first written (``os.umask`` reads it only by setting it;
    022 in between, so that a file another thread creates meanwhile is not world-writable)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
