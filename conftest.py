"""The environment every test run starts from, whatever the shell has set.

pytest loads this file (the repository root's) before any test module: tests/ and plugins/*/tests
run under the same settings as CI's fresh shell and a developer's. (The netadapt.testing plugin,
loaded before it, imports torch but initialises no CUDA device and builds no rich console, so the
settings below still hold.) A variable the user sets explicitly to another value keeps it where ``setdefault``
is used.
"""

from __future__ import annotations

import os

# The thread count is left as it is (torch's default: one thread per core). Runs compared bit for bit
# (resume after SIGKILL, train vs eval) run under the same count; tests that run two torch processes
# side by side (torchrun) give each one thread themselves. One thread everywhere would make the
# default run ~40 % slower on 2 cores (470 s against 330 s).

# CPU only: a visible GPU would change the default device and the bit-for-bit comparisons.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# Output the tests read: no forced colour (rich would wrap "error:" in escape codes), rich's own
# width, netadapt's one-line errors (no NETADAPT_DEBUG tracebacks), every installed plugin.
for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS", "NETADAPT_DEBUG", "NETADAPT_DISABLE_PLUGINS"):
    os.environ.pop(name, None)
