"""The look-up table on disk: measured latencies of ops, one JSON file per device and torch version.

Format ``netadapt-latency-table``, version 1::

    {"format": "netadapt-latency-table", "version": 1, "unit": "ms",
     "device": "cpu Intel(R) Xeon(R) CPU @ 2.20GHz, 1 thread", "torch": "2.14.1",
     "entries": {"float32[1,24,48,48] 3fa2c0d1e4b59a67": {"ms": 0.41, "op": "InvertedResidual(...)",
                                                          "warmup": 5, "repeats": 20, "plugin_version": "0.1.0"}}}

An entry's key is the op's input and structure (:func:`netadapt_latency.fingerprint.entry_key`);
the file holds one device (its thread count included) and one torch version. An entry also
records how it was timed (warm-up and timed runs, this plugin's version): the table measured here
reuses it only for the same settings (:meth:`LatencyTable.get` with ``settings``) and times the op
anew otherwise; a table from elsewhere is read whatever its settings. The table measured here lives in netadapt's
cache folder (``$NETADAPT_CACHE`` or ``~/.cache/netadapt``) as
``latency/<device>-torch<version>.json``; a table measured elsewhere (on the phone or the board
the network is meant for) has the same format and is only read. Writes are atomic
(:func:`netadapt.files.write_json_atomic`) and merge what another process added meanwhile.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netadapt.errors import ConfigError
from netadapt.files import write_json_atomic

FORMAT = "netadapt-latency-table"
VERSION = 1


@dataclass
class LatencyTable:
    path: Path
    device: str
    torch: str
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | Path) -> LatencyTable:
        """A table file, checked; a missing or malformed file is one ConfigError line naming it."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as error:
            raise ConfigError(f"{path}: cannot read latency table: {error.strerror or error}") from None
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: not a latency table (malformed JSON at line {error.lineno})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ConfigError(f"{path}: not a latency table (expected \"format\": \"{FORMAT}\", \"version\": {VERSION})")
        entries = data.get("entries")
        if not isinstance(entries, dict):
            raise ConfigError(f"{path}: field 'entries' must map op keys to {{\"ms\": latency}}")
        for key, entry in entries.items():
            ms = entry.get("ms") if isinstance(entry, dict) else None
            if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms < 0:
                raise ConfigError(f"{path}: entry {key!r} has no latency: expected {{\"ms\": a number ≥ 0}}, got {entry!r}")
        return cls(path, str(data.get("device", "unknown device")), str(data.get("torch", "unknown")), entries)

    @classmethod
    def local(cls, folder: Path, *, device: str, torch_version: str) -> LatencyTable:
        """The table of this device and torch version under ``folder`` (empty if none was measured yet)."""
        path = folder / f"{_slug(device)}-torch{_slug(torch_version)}.json"
        if not path.is_file():
            return cls(path, device, torch_version)
        table = cls.read(path)
        if (table.device, table.torch) != (device, torch_version):
            raise ConfigError(f"{path}: holds latencies of {table.device!r}, torch {table.torch}; expected {device!r}, torch {torch_version}")
        return table

    def get(self, key: str, **settings: Any) -> float | None:
        """The latency under ``key``; ``None`` when there is none or it was timed with other ``settings``."""
        entry = self.entries.get(key)
        if entry is None or any(entry.get(name) != value for name, value in settings.items()):
            return None
        return float(entry["ms"])

    def add(self, key: str, ms: float, **info: Any) -> None:
        """Record a measurement and write the file (merged with entries another process wrote meanwhile)."""
        self.entries[key] = {"ms": ms, **info}
        on_disk = LatencyTable.read(self.path).entries if self.path.is_file() else {}
        self.entries = on_disk | self.entries
        write_json_atomic(self.path, {
            "format": FORMAT, "version": VERSION, "unit": "ms", "device": self.device, "torch": self.torch, "entries": self.entries,
        })


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")
