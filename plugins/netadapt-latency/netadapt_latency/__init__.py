"""netadapt-latency: the ``latency`` cost model for netadapt (a netadapt plugin).

Each op the search asks about is timed on the device it lives on and kept in a look-up table on
disk (:mod:`netadapt_latency.table`), keyed by device, torch version, input shape and the op's
structure (:mod:`netadapt_latency.fingerprint`); a table measured elsewhere can be given instead.
"""

__version__ = "0.1.0"
