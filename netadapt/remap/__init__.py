"""Parameter remapping (DESIGN §1.2; paper Section 2.1): base weights into another architecture.

The driver aligns the layers of a source and a target network of the same family by their
genotypes (depth, Eq. 1) and hands every target module that owns tensors to the rule registered
for its type (``register_remap_rules``); the rules handle kernel (Eq. 2) and width. Modules
outside the searched stages (stem, head conv, classifier) are matched by their path.
"""

from netadapt.remap.driver import IGNORE, RemapReport, find_rule, layer_correspondence, remap_network

__all__ = ["IGNORE", "RemapReport", "find_rule", "layer_correspondence", "remap_network"]
