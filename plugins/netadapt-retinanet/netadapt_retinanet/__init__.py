"""RetinaNet as a netadapt detector plugin (registered as ``retinanet`` through the ``netadapt`` entry points).

:mod:`netadapt_retinanet.retinanet` builds the model; :mod:`netadapt_retinanet.plugin` registers it.
"""

__version__ = "0.1.0"
