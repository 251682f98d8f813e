"""Atomic file output: nothing half-written is ever left under a final name.

Every file netadapt writes (genotypes, checkpoints, results, metrics, reports) goes through
:func:`atomic_path`: the content is written to a temporary file in the same directory, then
moved into place with ``os.replace`` (atomic on POSIX), and the temporary file is removed if
writing fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on failure delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        os.chmod(temporary_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual file mode
        os.replace(temporary_path, path)
    finally:
        temporary_path.unlink(missing_ok=True)


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
        detail = str(error).splitlines()[0] if str(error) else ""
        raise WeightsError(f"{path}: not a readable {what} ({type(error).__name__}{': ' + detail if detail else ''})") from None


def load_resume_state(path: Path, *, format: str) -> dict[str, Any] | None:
    """The resumable state a run left in ``path`` (``None`` if there is none), checked to be of ``format``."""
    from netadapt.errors import WeightsError

    if not path.is_file():
        return None
    state = load_torch_file(path, what="checkpoint to resume from")
    if not isinstance(state, dict) or state.get("format") != format or "iteration" not in state:
        raise WeightsError(f"{path}: not a {format} checkpoint, cannot resume from it")
    return state
