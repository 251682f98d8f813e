"""The selection job (``netadapt select``, DESIGN §1.6): the wiring of :mod:`netadapt.select.run` — the space of a
finished search or of the one a search would have, the base weights the candidates are remapped from, the memory
check of the rungs' training, the selection directory — and the training of a rung's candidate by the train job."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from netadapt import plugins
from netadapt.cache import cache_root
from netadapt.engine.distributed import pick_device
from netadapt.engine.memory import memory_budget
from netadapt.engine.rundir import run_directory
from netadapt.engine.train import TrainResult
from netadapt.errors import ConfigError, OutputError, RunError
from netadapt.files import remove_outputs, save_torch_atomic
from netadapt.genotype import Genotype, genotype_from_data
from netadapt.jobs.common import Announce, Data, RemapConfig, SearchConfig, SelectConfig, TrainConfig, check_memory, pretrain
from netadapt.jobs.train import train
from netadapt.select.run import RungJob, SelectResult, Space, resolve_select_target, run_select
from netadapt.weights import read_weights


def select(
    search_dir: str | Path | None = None,
    *,
    target: str | float | None = None,
    base: str = "mobilenetv2",
    detector: str = "ssdlite",
    weights: str | Path | None = None,
    data: Data = Data(),
    config: SelectConfig | None = None,
    train_config: TrainConfig | None = None,
    search_config: SearchConfig | None = None,
    remap: RemapConfig | None = None,
    out_dir: str | Path = "runs/select",
    parallel: int = 1,
    resume: bool = False,
    force: bool = False,
    max_memory: str | int | None = None,
    announce: Announce = print,
) -> SelectResult:
    """The selection stage (:mod:`netadapt.select.run`): a pool under the target — the base if it fits, the base
    pruned by depth and by width, the search's network (``search_dir``), solutions of the constrained choice on the
    remap-aware score — narrowed by successive halving of short trainings on held-out training images; writes
    ``selection.json`` and the winner's ``genotype.yaml`` into ``out_dir``. ``target`` (or ``select.target``): the
    budget, by default the search's. Without a search the space and table are those a search with ``search_config``
    would have. ``weights`` must be a file (the rungs train in worker processes): by default the demo's base."""
    refuse_under_torchrun("select")
    config = config or data.config(SelectConfig, "select")
    train_config = train_config or data.config(TrainConfig, "train")
    remap = remap or data.config(RemapConfig, "remap")
    if target is not None:
        config = dataclasses.replace(config, target=target)
        config.validate("--target")
    out_dir = Path(out_dir)
    space = selection_space(search_dir, base=base, config=config, search_config=search_config or data.config(SearchConfig, "search"))
    splits = data.splits()
    # The rungs' training step (on the base network: no candidate under a target is dearer) checked for memory, each of
    # the ``parallel`` trainings side by side getting its share of the budget.
    share = memory_budget(pick_device(None), max_memory).bytes // max(1, parallel)
    check_memory("select", train_config, base=space.base_name, detector=detector, splits=splits, max_memory=share, announce=announce)
    if weights is None:
        if not data.is_demo:
            raise ConfigError("select: pass --weights FILE, 'imagenet' or 'none' (the base weights the candidates are remapped from)")
        weights = pretrain(space.base_name, progress=False, announce=announce)
    started_before = (out_dir / "rungs").exists() or (out_dir / "selection.json").exists()
    if started_before and not resume and not force:
        raise RunError(f"{out_dir} holds a selection: continue it with --resume, start over with --force, or choose another --out")
    with run_directory(out_dir, resume=True):
        if force and not resume:
            for stale in ("rungs", "pool", "selection.json", "genotype.yaml", "scores.json"):
                left = remove_outputs(out_dir / stale)  # only what netadapt wrote there (netadapt/files.py)
                if left:
                    raise OutputError(f"{left[0]}: netadapt did not write it; --force does not delete it: move it and run again")
        weights = _weights_file(weights, base=space.base_name, out_dir=out_dir)
        return run_select(
            space=space, detector=detector, weights_path=weights, weights=read_weights(weights, base_name=space.base_name),
            train_annotations=splits["train"].annotations,
            train_images=splits["train"].images, config=config, train_config=train_config, remap=remap, out_dir=out_dir,
            parallel=parallel, resume=resume, cache_dir=cache_root() / "remap_scores", announce=announce, train_candidate=train_candidate,
        )


def refuse_under_torchrun(job: str) -> None:
    """The selection runs in one process — its candidates side by side in worker processes (``--parallel``) — and every
    rank of a ``torchrun`` would run it whole, into the same folder: refused before anything runs."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        hint = "pass --no-select, or run `netadapt select SEARCH_DIR` alone after the search" if job == "adapt" else "run it without torchrun"
        raise ConfigError(f"{job}: the selection stage runs in one process (its candidates side by side with --parallel), not under torchrun: {hint}")


def train_candidate(job: RungJob) -> TrainResult:
    """A rung's training of one candidate (:class:`~netadapt.select.run.RungJob`) by the train job, on the rung split,
    quietly; a stopped one continues. A module's function: the rungs' worker processes receive it by name."""
    resume = job.resume and (Path(job.out_dir) / "last.pth").is_file()
    return train(
        genotype_from_data(job.genotype), detector=job.detector, weights=job.weights, data=Data(root=job.data_root),
        config=TrainConfig(**job.train_config), remap=RemapConfig(mode=job.remap_mode), out_dir=job.out_dir,
        resume=resume, force=not resume, progress=False, announce=lambda _: None,
    )


def selected_network(search_dir: Path, **options) -> tuple[Genotype, dict]:
    """``adapt``'s selection stage: :func:`select` on the finished search; the winner and ``selection.json``."""
    result = select(search_dir, **options)
    return result.genotype, json.loads((result.out_dir / "selection.json").read_text())


def _weights_file(weights: str | Path, *, base: str, out_dir: Path) -> str:
    """What the selection's worker processes read: a file as it is (absolute), ``imagenet`` as it is, ``none`` one random
    base (seed 0) written to ``out_dir/base-random.pth``, so that the score and every rung start from the same one."""
    if str(weights) == "imagenet":
        return "imagenet"
    if str(weights) != "none":
        return str(Path(weights).resolve())
    path = out_dir / "base-random.pth"
    if not path.is_file():
        with torch.random.fork_rng():  # the caller's random state is left as it was
            torch.manual_seed(0)
            base_network = plugins.bases().get(base)
            save_torch_atomic(base_network.build(base_network.base_genotype()).state_dict(), path)
    return str(path.resolve())


def selection_space(search_dir: str | Path | None, *, base: str, config: SelectConfig, search_config: SearchConfig) -> Space:
    """The :class:`~netadapt.select.run.Space` of a finished search (its α, table, derived ops and target), or the one a
    search with ``search_config`` would have."""
    from netadapt.search.budget import base_ops, check_target
    from netadapt.search.derive import choose_ops
    from netadapt.search.front import load_search
    from netadapt.search.loop import search_budget
    from netadapt.search.space import default_space_name, load_search_space

    if search_dir is not None:
        search = load_search(search_dir)
        cost_file = Path(search_dir) / "cost.json"
        search_target = json.loads(cost_file.read_text()).get("target") if cost_file.is_file() else None
        target = resolve_select_target(config.target, space_table=search.table, base_ops_=search.base_ops, search_target=search_target)
        space = Space(
            search.base, plugins.bases().get(search.base).base_genotype(), search.skeleton, search.layers, search.space.name,
            search.space.fingerprint(), search.table, target,
            alpha_rows=[torch.log_softmax(a.detach().double(), 0).tolist() for a in search.arch.alphas],
            searched=choose_ops(search.arch, search.table, target),  # the search's α under the selection's budget
        )
    else:
        if config.target is None:
            raise ConfigError("select: without a search, pass --target (e.g. 0.7x)")
        budget = search_budget(base, dataclasses.replace(search_config, target=config.target), cache_dir=cache_root() / "cost_tables")
        name = search_config.space or default_space_name(base)
        space = Space(base, budget.base_genotype, budget.skeleton, budget.layers, name, load_search_space(name).fingerprint(), budget.table, budget.target)
    if base_ops(space.base_genotype, space.layers) is None:
        raise ConfigError(f"select: the search space {space.space_name!r} lacks ops of base {space.base_name!r}: its baselines and score need them")
    check_target(space.target, space.costs, unit=space.table.unit, where="select.target")
    return space
