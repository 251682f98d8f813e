"""The jobs behind the commands, callable from Python with their power: one module per job, each wiring the parts
(data, weights, config defaults, distributed set-up) into one run. A command parses, calls its job and prints::

    from netadapt import jobs
    result = jobs.search(data=jobs.Data(), config=None)                    # the README's main command
    report = jobs.adapt(data=jobs.Data(root="coco/"), weights="imagenet")  # the whole method on COCO

The defaults (:mod:`netadapt.jobs.common`):

- **data** (:class:`Data`): a dataset plugin and its folder; a folder alone is the ``coco`` plugin's layout,
  neither is the embedded demo (generated once, cached);
- **config**: a section of the given config file, else of the demo's packaged one on the demo, else the
  paper's defaults, with ``overrides`` (``section.key=value``) on top (:meth:`Data.config`);
- **base weights** (:func:`base_weights`): a file, ``imagenet`` or ``none``; when not given, the demo's
  classifier-pretrained base on the demo (pretrained once, cached: :mod:`netadapt.jobs.pretrain`), else
  random initialisation with a warning.

Every job checks what it can before it trains (a search's infeasible target, then whether its step's projected
peak memory fits the device, both before the demo base's pretraining: :func:`check_memory`), sets up ``torchrun``'s
process group when there is one and tears it down after (:func:`distributed_run`).

A job's module has the job's name (``netadapt.jobs.train`` holds :func:`train`); the name here is the job itself,
the module is reached by its full path (``from netadapt.jobs.train import init_backbone``). Every module is imported
here, before the names are bound, so that ``jobs.train`` is the function whichever module is imported later.
"""

from netadapt.jobs import (  # noqa: F401 — the modules first (see above)
    adapt, common, cost, data, estimate, evaluate, export, front, plugins, predict, preflight, pretrain, reference, remap, search, select,
    show, train,
)
from netadapt.jobs.adapt import AdaptReport, adapt  # noqa: F811
from netadapt.jobs.common import (
    Announce, Data, RemapConfig, SearchConfig, SelectConfig, TrainConfig, base_weights, check_memory, distributed_run, num_classes, pretrain,
    resolve_splits, started_batch,
)
from netadapt.jobs.cost import cost  # noqa: F811
from netadapt.jobs.data import demo_dataset
from netadapt.jobs.estimate import estimate  # noqa: F811
from netadapt.jobs.evaluate import evaluate, evaluation  # noqa: F811
from netadapt.jobs.export import export  # noqa: F811
from netadapt.jobs.front import front  # noqa: F811
from netadapt.jobs.plugins import installed_plugins
from netadapt.jobs.predict import predict  # noqa: F811
from netadapt.jobs.remap import remap  # noqa: F811
from netadapt.jobs.search import search  # noqa: F811
from netadapt.jobs.select import select, selection_space  # noqa: F811
from netadapt.jobs.show import show  # noqa: F811
from netadapt.jobs.train import init_backbone, train  # noqa: F811

__all__ = [
    "AdaptReport", "Announce", "Data", "RemapConfig", "SearchConfig", "SelectConfig", "TrainConfig", "adapt", "base_weights", "check_memory",
    "cost", "demo_dataset", "distributed_run", "estimate", "evaluate", "evaluation", "export", "front", "init_backbone", "installed_plugins",
    "num_classes", "predict", "pretrain", "remap", "resolve_splits", "search", "select", "selection_space", "show", "started_batch", "train",
]
