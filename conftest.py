"""The environment every test run starts from, whatever the shell has set.

pytest loads this file (the repository root's) before any test module, so before torch is
imported: tests/ and plugins/*/tests run under the same settings as CI's fresh shell and a
developer's. A variable the user sets explicitly to another value keeps it where ``setdefault``
is used.
"""

from __future__ import annotations

import os

# One intra-op thread: torch's float reductions depend on the thread count, and the thresholds and
# bit-for-bit comparisons of the tests (resume after SIGKILL, a loss that falls, a cheaper search)
# were measured with one; subprocess tests also run two torch processes side by side.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# CPU only: a visible GPU would change the default device and the bit-for-bit comparisons.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Output the tests read: no forced colour (rich would wrap "error:" in escape codes), rich's own
# width, netadapt's one-line errors (no NETADAPT_DEBUG tracebacks), every installed plugin.
for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS", "NETADAPT_DEBUG", "NETADAPT_DISABLE_PLUGINS"):
    os.environ.pop(name, None)
