"""netadapt: adapt a classification-pretrained network into a backbone for another task.

Parameter remapping (FNA, Section 2.1) and network adaptation by differentiable architecture
search (Section 2.2). See README.md and DESIGN.md.
"""

__version__ = "0.1.0"
