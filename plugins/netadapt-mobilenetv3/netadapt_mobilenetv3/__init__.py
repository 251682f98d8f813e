"""netadapt-mobilenetv3: MobileNetV3-Large (Howard et al., 2019) as a netadapt base network.

The plugin module :mod:`netadapt_mobilenetv3.plugin` registers the base ``mobilenetv3``
(:mod:`netadapt_mobilenetv3.network`) and the search space ``fna-mobilenetv3``
(:mod:`netadapt_mobilenetv3.space`) through the entry-point group ``netadapt``.
"""

from pathlib import Path

__version__ = "0.1.0"

#: Example genotype files shipped with the package (``mobilenetv3_large.yaml``: the base network).
GENOTYPES = Path(__file__).resolve().parent / "genotypes"
