"""Where netadapt keeps what it makes once and reuses: the demo dataset, pretrained demo bases, cost
tables, a latency plugin's timings."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "NETADAPT_CACHE"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir`` if given, else ``$NETADAPT_CACHE``, else ``~/.cache/netadapt``."""
    return Path(cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache/netadapt")
