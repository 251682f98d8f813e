"""RetinaNet as a netadapt detector plugin (registered as ``retinanet`` through the ``netadapt`` entry points).

:mod:`netadapt_retinanet.retinanet` builds the model, :mod:`netadapt_retinanet.export_rule` post-processes its
export; :mod:`netadapt_retinanet.plugin` registers both.
"""

__version__ = "0.1.0"
