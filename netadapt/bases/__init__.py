"""Base networks: the built-in ``mobilenetv2`` and what the MobileNet family shares.

What a base-network plugin registers, and what the network it builds must have, is
:class:`netadapt.contracts.BaseNetwork` and :class:`netadapt.contracts.Network`
(docs/writing-a-plugin.md).
"""

from netadapt.contracts import BaseNetwork, Network

__all__ = ["BaseNetwork", "Network"]
