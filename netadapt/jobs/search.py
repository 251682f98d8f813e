"""The search job (``netadapt search``): network adaptation by differentiable search (paper Section 2.2)."""

from __future__ import annotations

from pathlib import Path

from netadapt.cache import cache_root
from netadapt.engine.rundir import check_resumable, run_directory
from netadapt.jobs.common import Announce, Data, SearchConfig, base_weights, check_memory, distributed_run, started_batch
from netadapt.search.loop import preflight_search, run_search
from netadapt.search.preflight import SearchBudget
from netadapt.weights import Weights


def search(
    *,
    base: str = "mobilenetv2",
    detector: str = "ssdlite",
    weights: str | Weights | None = None,
    data: Data = Data(),
    config: SearchConfig | None = None,
    out_dir: str | Path = "runs/search",
    resume: bool = False,
    force: bool = False,
    device: str | None = None,
    progress: bool = True,
    announce: Announce = print,
    max_memory: str | int | None = None,
    auto_batch: bool = False,
    force_option: str | None = "--force",
    budget: SearchBudget | None = None,
):
    """Search an architecture (:func:`netadapt.search.loop.run_search`) into ``out_dir``, which the run holds
    (:func:`~netadapt.engine.rundir.run_directory`); ``None`` when interrupted before the end. An infeasible
    ``search.target``, a ``search.base_prior`` the base's ops cannot take, or a step whose projected peak memory does
    not fit (:func:`~netadapt.jobs.common.check_memory`) is refused before anything trains, the demo base's pretraining
    included. ``force_option`` names the caller's way to start over a resumable run in the refusal (``None``: it has none);
    ``budget``, what the caller's own :func:`~netadapt.search.preflight.preflight_search` of ``config`` returned (the target is
    then resolved and checked once per run)."""
    config = config or data.config(SearchConfig, "search")
    splits = data.splits()
    if budget is None:
        budget = preflight_search(base, config, cache_dir=cache_root() / "cost_tables")
    config = check_memory(
        "search", started_batch(config, out_dir, resume=resume and auto_batch), base=base, detector=detector, splits=splits, device=device,
        max_memory=max_memory, auto_batch=auto_batch, announce=announce,
    )
    source = base_weights(weights, base=base, data=data, progress=progress, announce=announce)
    out_dir = Path(out_dir)
    if resume:
        check_resumable(out_dir)
    with distributed_run(device) as context, run_directory(
        out_dir, resume=resume, force=force, enabled=context.is_main, force_option=force_option,
    ):
        return run_search(
            base_name=base, detector_name=detector, weights=source, config=config, train_split=splits["train"],
            out_dir=out_dir, resume=resume, context=context, progress=progress, cache_dir=cache_root() / "cost_tables", budget=budget,
        )
