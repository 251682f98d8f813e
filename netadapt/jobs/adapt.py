"""The whole method in one job (``netadapt adapt``; DESIGN §1.3 and §2.3).

remap the base into the super network → search → derive → (select, under a target: ``netadapt select``) →
remap the base into the derived or selected architecture → train its detector → evaluate; the base network's own detector is trained and
evaluated with the same budget for comparison. The run directory holds ``search/``,
``adapted/`` and ``base/`` (each a full run directory of its stage) and ``report.md`` /
``report.json`` in the paper's table form: params, MAdds and mAP of the base and the adapted
network (Table 1), and the cost of each stage in wall-clock hours and, on GPUs, GPU-hours
(Table 2), and the cost the search's cost model (MAdds, or a plugin's) gives the adapted network's
searched layers, predicted from its cost table and measured (``search/cost.json``). With
``resume``, finished stages are kept and an interrupted one continues.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netadapt import plugins
from netadapt.cache import cache_root
from netadapt.cost import format_cost
from netadapt.detectors.cost import detector_cost
from netadapt.detectors.model import DetectorSpec, build_detector, options_from_config
from netadapt.errors import ConfigError
from netadapt.files import write_json_atomic, write_text_atomic
from netadapt.genotype import load_genotype
from netadapt.jobs.common import (
    Announce, Data, RemapConfig, SearchConfig, SelectConfig, TrainConfig, base_weights, check_memory, distributed_run, num_classes, pretrain,
)
from netadapt.jobs.pretrain import pretrained_demo_path
from netadapt.jobs.search import search
from netadapt.jobs.select import refuse_under_torchrun, selected_network
from netadapt.jobs.train import train
from netadapt.search.loop import preflight_search
from netadapt.weights import Weights


@dataclass
class NetworkRow:
    """One row of Table 1."""

    name: str
    genotype: dict[str, Any]
    params: float
    madds: float
    metrics: dict[str, float]


@dataclass
class AdaptReport:
    base: str
    detector: str
    dataset: str
    input_size: int
    device: str
    world_size: int
    weights: str
    networks: list[NetworkRow] = field(default_factory=list)
    hours: dict[str, float] = field(default_factory=dict)  # stage → wall-clock hours
    search_cost: dict[str, Any] | None = None  # search/cost.json: the searched layers, predicted and measured
    selection: dict[str, Any] | None = None  # select/selection.json's decision, when the selection stage ran

    @property
    def gpu_hours(self) -> dict[str, float] | None:
        return {stage: hours * self.world_size for stage, hours in self.hours.items()} if self.device == "cuda" else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base, "detector": self.detector, "dataset": self.dataset, "input_size": self.input_size,
            "device": self.device, "world_size": self.world_size, "weights": self.weights,
            "networks": [row.__dict__ for row in self.networks], "hours": self.hours, "gpu_hours": self.gpu_hours,
            "search_cost": self.search_cost, "selection": self.selection,
        }

    def to_markdown(self) -> str:
        gpu = self.gpu_hours
        lines = [
            "# netadapt adapt report",
            "",
            f"Base network **{self.base}** (weights: {self.weights}), detector **{self.detector}**, dataset {self.dataset}, "
            f"input {self.input_size}×{self.input_size}, {self.world_size} × {self.device}.",
            "",
            "## Table 1 — base and adapted network",
            "",
            "| network | params | MAdds | mAP | mAP@0.5 | mAP@0.75 |",
            "|---|---|---|---|---|---|",
        ]
        for row in self.networks:
            m = row.metrics
            lines.append(
                f"| {row.name} | {row.params / 1e6:.2f}M | {row.madds / 1e9:.3f}B | {100 * m['AP']:.1f} | {100 * m['AP50']:.1f} | {100 * m['AP75']:.1f} |"
            )
        lines += [
            "",
            "mAP is COCO's AP@[0.50:0.95] on the validation split (pycocotools); MAdds count the detector's convolutions "
            "(fvcore), without the input transform and post-processing.",
            "",
            "## Table 2 — cost",
            "",
            "| stage | wall-clock hours | GPU-hours |",
            "|---|---|---|",
        ]
        for stage in ("search", "selection", "final training", "total"):
            if stage not in self.hours:
                continue
            gpu_value = f"{gpu[stage]:.3f}" if gpu else "— (CPU)"
            lines.append(f"| {stage} | {self.hours[stage]:.3f} ({60 * self.hours[stage]:.1f} min) | {gpu_value} |")
        extra = [stage for stage in self.hours if stage not in ("search", "selection", "final training", "total")]
        if extra:
            lines += ["", "Not part of the method's cost: " + ", ".join(f"{stage} {self.hours[stage]:.3f} h" for stage in extra) + "."]
        if self.search_cost is not None:
            lines += ["", "## The search's cost model", "", _search_cost_line(self.search_cost)]
        if self.selection is not None:
            lines += ["", "## Selection", "", _selection_lines(self.selection)]
        adapted = next((row for row in self.networks if row.name.startswith("adapted")), None)
        if adapted is not None:
            stages = "\n".join(f"  - {stage}" for stage in _stage_lines(adapted.genotype))
            lines += ["", "## Adapted architecture", "", "```yaml", "stages:", stages, "```", "",
                      "α over the search: `search/alpha_history.png`; genotype: `search/genotype.yaml`."]
        return "\n".join(lines) + "\n"


def _search_cost_line(cost: dict[str, Any]) -> str:
    measured = (
        f"measured **{format_cost(cost['measured'], cost['unit'])}** ({cost['measured_how']})" if cost["measured"] is not None else cost["measured_how"]
    )
    target = f" Target (`search.target`): **{format_cost(cost['target'], cost['unit'])}**." if cost.get("target") is not None else ""
    return (
        f"Cost model **{cost['model']}** ({cost['source']}), for {cost['scope']}: predicted "
        f"**{format_cost(cost['predicted'], cost['unit'])}** ({cost['predicted_from']}); {measured}.{target}"
    )


def _selection_lines(selection: dict[str, Any]) -> str:
    """What the selection stage chose and how it compares with the base pruned by depth (never silently worse)."""
    finals = {c["name"]: c["rungs"][-1]["map"] for c in selection["pool"] if c["rungs"]}
    winner = selection["winner"]
    text = (
        f"The trained network is **{winner}**, chosen from a pool of {len(selection['pool'])} "
        f"({', '.join(c['name'] for c in selection['pool'])}) by successive halving on {selection['held_out_images']} held-out "
        f"training images (`select/selection.json`); held-out mAP at its last rung {finals.get(winner, float('nan')):.1f}."
    )
    if selection.get("winner_below_pruned_base"):
        text += (f" **Its selection score is below that of the base pruned by depth** ({finals['base-pruned-depth']:.1f}): "
                 "it was kept because it ranks first within the noise margin with fewer changed layers.")
    elif selection.get("winner_is_baseline"):
        text += " It is a baseline (no search needed for it): the search's and the score's candidates did not beat it."
    return text


def _stage_lines(genotype: dict[str, Any]) -> list[str]:
    return [f"[[{c_in}, {c_out}], [{', '.join(ops)}], {stride}]" for (c_in, c_out), ops, stride in genotype["stages"]]


def adapt(
    *,
    base: str = "mobilenetv2",
    detector: str = "ssdlite",
    weights: str | Weights | None = None,
    data: Data = Data(),
    search_config: SearchConfig | None = None,
    train_config: TrainConfig | None = None,
    out_dir: str | Path = "runs/adapt",
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    announce: Announce = print,
    select_stage: bool = True,
    select_config: SelectConfig | None = None,
    remap: RemapConfig | None = None,
    parallel: int = 1,
    max_memory: str | int | None = None,
    auto_batch: bool = False,
) -> AdaptReport:
    """The whole method (module docstring) into ``out_dir``: the search job, the selection job (under a target —
    ``search.target`` or ``select.target`` — and with ``select_stage``: in ``out_dir/select``, its winner is trained),
    then the train job on the adapted network and on the base for comparison; ``report.md`` / ``report.json``.

    Before anything trains: the search's target and prior, a bad training option (on the base network: the derived one
    is not known yet), and the memory of the search step and the training step. The demo base's pretraining, when it
    runs, is timed apart. With ``resume``, finished stages are kept and an interrupted one continues."""
    search_config = search_config or data.config(SearchConfig, "search")
    train_config = train_config or data.config(TrainConfig, "train")
    select_config = select_config or data.config(SelectConfig, "select")
    if select_stage and (search_config.target is not None or select_config.target is not None):
        refuse_under_torchrun("adapt")
    splits = data.splits()
    budget = preflight_search(base, search_config, cache_dir=cache_root() / "cost_tables")  # before any training
    memory = {"base": base, "detector": detector, "splits": splits, "device": device, "max_memory": max_memory, "auto_batch": auto_batch,
              "announce": announce}
    search_config = check_memory("search", search_config, **memory)
    train_config = check_memory("train", train_config, **memory)
    base_genotype = plugins.bases().get(base).base_genotype()
    # The training options are checked now, on the base network: a bad one must not wait for the search to end.
    classes = ["__background__"] + [str(label) for label in range(1, num_classes(splits))]
    train_options = options_from_config(detector, train_config)
    build_detector(DetectorSpec(detector, base, base_genotype, classes, train_config.input_size, train_options))
    started = time.perf_counter()
    pretraining = data.is_demo and weights is None and not pretrained_demo_path(base).is_file()
    source = base_weights(weights, base=base, data=data, progress=progress, announce=announce)
    extra_hours = {"base pretraining on demo crops": (time.perf_counter() - started) / 3600} if pretraining else {}
    remap = remap or data.config(RemapConfig, "remap")
    if select_stage and (search_config.target is not None or select_config.target is not None) and isinstance(weights, Weights):
        raise ConfigError("adapt: the selection stage trains candidates in worker processes: give the weights as a file, 'imagenet' or 'none'")
    jobs = {"base": base, "detector": detector, "weights": source if source is not None else "none", "data": data, "device": device,
            "progress": progress, "announce": announce, "max_memory": max_memory, "auto_batch": auto_batch, "force_option": None}  # no --force
    out_dir = Path(out_dir)
    with distributed_run(device) as context:
        hours: dict[str, float] = {}
        search_dir = out_dir / "search"
        started = time.perf_counter()
        if resume and (search_dir / "genotype.yaml").is_file():
            announce(f"Search: done before, {search_dir / 'genotype.yaml'}")
        else:
            announce("Search: the base network remapped into the super network, α and weights trained alternately")
            search(config=search_config, out_dir=search_dir, resume=resume and (search_dir / "last.pth").is_file(), budget=budget, **jobs)
        hours["search"] = _hours_of(search_dir, "search", started, resume, context.is_main)
        genotype, selection = load_genotype(search_dir / "genotype.yaml"), None
        if select_stage and (search_config.target is not None or select_config.target is not None):
            started = time.perf_counter()
            weights_file = weights if weights is not None else (pretrain(base, progress=False, announce=None) if data.is_demo else "none")
            genotype, selection = selected_network(
                search_dir, base=base, detector=detector, weights=weights_file, data=data, config=select_config, train_config=train_config,
                remap=remap, out_dir=out_dir / "select", parallel=parallel, resume=resume, force=not resume, max_memory=max_memory,
                announce=announce,
            )
            hours["selection"] = _hours_of(out_dir / "select", "selection", started, resume, context.is_main)
        genotype = genotype.at_input_size(train_config.input_size)

        networks = []
        for name, stage, architecture in (
            (f"adapted ({selection['winner']})" if selection else "adapted (searched)", "final training", genotype),
            (f"{base} (base)", "base training (for comparison)", base_genotype),
        ):
            run_dir = out_dir / ("adapted" if name.startswith("adapted") else "base")
            started = time.perf_counter()
            if resume and (run_dir / "metrics.json").is_file():
                metrics = json.loads((run_dir / "metrics.json").read_text())
            else:
                announce(f"Training the {name} detector: backbone remapped from the base weights (Section 2.1)")
                metrics = train(
                    architecture, config=train_config, remap=remap, out_dir=run_dir, resume=resume and (run_dir / "last.pth").is_file(), **jobs,
                ).metrics
            hours[stage] = _hours_of(run_dir, stage, started, resume, context.is_main)
            spec = DetectorSpec(detector, base, architecture, classes, train_config.input_size, train_options)
            cost = detector_cost(build_detector(spec), input_size=train_config.input_size)
            networks.append(NetworkRow(name, architecture.to_dict(), cost["params"], cost["madds"], metrics))
        hours["total"] = hours["search"] + hours.get("selection", 0.0) + hours["final training"]
        hours.update(extra_hours)
        report = AdaptReport(
            base=base, detector=detector, dataset=data.name, input_size=train_config.input_size,
            device=context.device.type, world_size=context.world_size, weights=source.source if source else "random initialisation",
            networks=networks, hours=hours,
            search_cost=json.loads((search_dir / "cost.json").read_text()) if (search_dir / "cost.json").is_file() else None,
            selection=selection,
        )
        if context.is_main:
            write_json_atomic(out_dir / "report.json", report.to_dict())
            write_text_atomic(out_dir / "report.md", report.to_markdown())
        return report


def _hours_of(run_dir: Path, stage: str, started: float, resume: bool, is_main: bool) -> float:
    """Wall-clock hours of a stage; a stage finished in an earlier run keeps the time it recorded then."""
    record = run_dir / "stage_time.json"
    if resume and record.is_file():
        return json.loads(record.read_text())["hours"]
    hours = (time.perf_counter() - started) / 3600
    if not is_main:
        return hours
    write_json_atomic(record, {"stage": stage, "hours": hours})
    return hours
