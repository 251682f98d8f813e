"""The domain exceptions of netadapt.

Library code raises these; the CLI prints their message as one line on stderr and exits with
code 2 (``NETADAPT_DEBUG=1`` shows the traceback). A message names the file, field, layer or
plugin at fault, so that the user can act on it without reading code.
"""


class NetadaptError(Exception):
    """Base class of every error netadapt raises on purpose."""


class GenotypeError(NetadaptError, ValueError):
    """A genotype file or value is malformed (names the file and the stage/op position)."""


class PluginError(NetadaptError):
    """A plugin is broken, a name is registered twice, or an unknown name was asked for."""


class WeightsError(NetadaptError):
    """Weights cannot be read, downloaded or loaded into a network."""


class RemapError(NetadaptError):
    """Parameter remapping cannot map a target layer (names the layer path and type)."""


class DataError(NetadaptError):
    """A dataset is malformed (names the file and the annotation or image id)."""


class ConfigError(NetadaptError, ValueError):
    """A configuration file or option is invalid (names the file and field)."""


class ExportError(NetadaptError):
    """A detector cannot be exported, or the exported model does not reproduce it (``netadapt export``)."""


class OutputError(NetadaptError):
    """An output file or run directory cannot be written (names the path and the reason)."""


class RunError(NetadaptError):
    """A run cannot start or go on: its directory is in use or holds another run, its loss is not finite."""


class MemoryBudgetError(RunError):
    """A job's projected peak memory exceeds what the device has (or ``--max-memory``); names the batch that fits."""


class OutOfMemory(RunError):
    """A run ran out of memory (CUDA's error, or a data loader worker killed); names the iteration and the checkpoint."""


class Interrupted(RunError):
    """SIGINT or SIGTERM stopped a run after it checkpointed; ``exit_code`` is 130 or 143 (128 + the signal)."""

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def describe(error: BaseException) -> str:
    """``Type: first line of the message`` of an exception from a library or a plugin, its further lines (its own
    traceback, torch's advice) left out: the middle of a one-line message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0].rstrip('.')[:200]}" if lines else type(error).__name__


class NetadaptWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints it as one line)."""


def loader_worker_died(error: BaseException) -> bool:
    """Whether ``error`` is torch's for a DataLoader worker that died (SIGKILL from the out-of-memory killer, a crash):
    raised where the main process reads a batch, or by torch's SIGCHLD handler wherever it happens to be."""
    message = str(error)
    return isinstance(error, RuntimeError) and "DataLoader worker (pid" in message and (
        "killed by signal" in message or "exited unexpectedly" in message
    )
