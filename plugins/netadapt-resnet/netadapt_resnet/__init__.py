"""netadapt-resnet: ResNet-18 and ResNet-50 (He et al., 2016) as netadapt base networks.

The plugin module :mod:`netadapt_resnet.plugin` registers the bases ``resnet18`` and ``resnet50``
(:mod:`netadapt_resnet.network`), the Net2Net width rule of their layers
(:mod:`netadapt_resnet.remap`) and the search space ``fna-resnet`` through the entry-point group
``netadapt``.
"""

from pathlib import Path

__version__ = "0.1.0"

#: Genotype files shipped with the package (``resnet18.yaml``, ``resnet50.yaml``: the base networks).
GENOTYPES = Path(__file__).resolve().parent / "genotypes"
