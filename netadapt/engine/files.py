"""Atomic file output: nothing half-written is ever left under a final name.

Every file netadapt writes (genotypes, checkpoints, results, metrics, reports) goes through
:func:`atomic_path`: the content is written to a temporary file in the same directory, then
moved into place with ``os.replace`` (atomic on POSIX), and the temporary file is removed if
writing fails.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMPORARY_GLOB = ".*.tmp"  # what atomic_path's temporary files look like (a killed writer leaves one)


def output_error(path: str | Path, error: OSError) -> Exception:
    """An OSError met writing ``path`` as one line (``--out`` a file, a read-only folder, a full disk)."""
    from netadapt.errors import OutputError

    return OutputError(f"{path}: cannot write: {error.strerror or error}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on failure delete it.

    An OSError on the way (no such folder, a file where a folder should be, no space, no
    permission) is an :class:`~netadapt.errors.OutputError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise output_error(path, error) from None
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        os.chmod(temporary_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(temporary_path, path)
    except OSError as error:
        raise output_error(path, error) from None
    finally:
        temporary_path.unlink(missing_ok=True)


def check_output_file(path: str | Path) -> Path:
    """Check up front, before any work, that a file can be written at ``path`` (its folder is created)."""
    path = Path(path)
    if path.is_dir():
        raise output_error(path, IsADirectoryError(21, "is a directory (give a file name)"))
    with atomic_path(path.with_name(f"{path.name}.check")) as temporary:
        temporary.write_bytes(b"")
    path.with_name(f"{path.name}.check").unlink()
    return path


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


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def save_torch_atomic(obj: Any, path: str | Path) -> None:
    import torch

    with atomic_path(path) as temporary:
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


# What each run's last.pth must hold to be resumed (engine/train.py and search/loop.py write them).
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
