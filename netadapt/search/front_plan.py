"""A finished search, decoded, and the front's plan (DESIGN §1.6): its targets resolved and, at each, the exact
constrained derive (:func:`~netadapt.search.derive.choose_ops`: Σ log softmax(α) maximised subject to Σ table cost
≤ target). No network runs here; :mod:`~netadapt.search.front_score` scores the points, :mod:`~netadapt.search.front_write`
writes them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from netadapt import plugins
from netadapt.config import SearchConfig, section_config
from netadapt.cost import format_cost
from netadapt.errors import ConfigError, PluginError, WeightsError
from netadapt.files import load_torch_file
from netadapt.genotype import Genotype, genotype_from_data
from netadapt.search.budget import base_ops, check_target, cost_range, resolve_target
from netadapt.search.cost_table import CostTable
from netadapt.search.derive import choose_ops, derive_genotype
from netadapt.search.space import SearchSpace
from netadapt.search.supernet import ArchitectureParameters, SearchedLayer

DEFAULT_POINTS = 6
MAX_POINTS = 100  # each point re-estimates BatchNorm and evaluates the super network: more is a typo, not a front


@dataclass
class FinishedSearch:
    """What a finished ``netadapt search`` directory holds, decoded."""

    directory: Path
    base: str
    detector: str
    space: SearchSpace
    skeleton: Genotype
    layers: list[SearchedLayer]  # paths empty: enough to derive (build_supernet gives the real ones)
    arch: ArchitectureParameters
    table: CostTable
    config: SearchConfig
    detector_state: dict[str, torch.Tensor]
    weight_image_ids: list[int]
    alpha_image_ids: list[int]
    base_ops: list[str] | None  # the ops that make the super network the base network (None: not in the space)
    base_cost: float | None  # the base network's searched layers (the search's record, else from base_ops; None: unknown)

    def genotype(self, ops: list[str]) -> Genotype:
        """The derived architecture of ``ops`` (one per searched layer), at the search's input size."""
        genotype = derive_genotype(self.skeleton, self.layers, ops, space_name=self.space.name)
        return genotype.at_input_size(self.config.input_size)


@dataclass
class FrontPoint:
    name: str  # point-1, ..., or base
    target_given: str | None  # as the user wrote it (0.7x, 250M); None for the base network
    target: float | None  # in the cost model's unit
    ops: list[str]
    genotype: Genotype
    predicted: float = math.nan  # Σ of the chosen ops' table entries
    measured: float | None = None  # the cost model run on the derived network's searched layers
    params: int = 0  # the derived detector's parameters (backbone, extras, head; the search's classes)
    metrics: dict[str, float] = field(default_factory=dict)  # COCOeval of the inherited-weights path, and its "loss"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "target_given": self.target_given, "target": self.target, "predicted": self.predicted,
            "measured": self.measured, "params": self.params, "proxy_map": 100 * self.metrics["AP"],
            "proxy_map50": 100 * self.metrics["AP50"], "proxy_loss": self.metrics["loss"], "genotype": f"{self.name}/genotype.yaml", "ops": self.ops,
            "stages": [stage.to_list() for stage in self.genotype.stages],
        }



def load_search(search_dir: str | Path) -> FinishedSearch:
    """Decode a finished search directory; one :class:`ConfigError` (or ``WeightsError``) line when it is not one."""
    directory = Path(search_dir)
    supernet_file, split_file = directory / "supernet.pth", directory / "split.json"
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such search directory")
    if not supernet_file.is_file() or not split_file.is_file():
        missing = "supernet.pth" if not supernet_file.is_file() else "split.json"
        raise ConfigError(f"{directory}: not a finished search (no {missing}): run `netadapt search --out {directory}` to its end first")
    state = load_torch_file(supernet_file, what="search result (supernet.pth)")
    needed = ("base", "detector", "space", "skeleton", "alpha", "candidates", "cost_table", "detector_state")
    missing_keys = [key for key in needed if not isinstance(state, dict) or key not in state]
    if missing_keys:
        raise WeightsError(f"{supernet_file}: not a netadapt search result (it lacks {', '.join(missing_keys)})")
    try:
        split = json.loads(split_file.read_text())
        weight_ids, alpha_ids = [int(i) for i in split["weight_image_ids"]], [int(i) for i in split["alpha_image_ids"]]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{split_file}: not a search's split (weight_image_ids and alpha_image_ids)") from None
    space = _search_space(state["space"], source=str(supernet_file))
    skeleton = genotype_from_data(state["skeleton"], source=f"{supernet_file} (skeleton)")
    layers = [
        SearchedLayer(s, i, "", space.layer_candidates(s, i))
        for s, stage in enumerate(skeleton.stages) if space.is_searched(s) for i in range(len(stage.ops))
    ]
    if [[op.name for op in layer.candidates] for layer in layers] != state["candidates"]:
        raise ConfigError(f"{supernet_file}: search space {space.name!r} no longer gives the candidates the search had (a plugin changed?)")
    arch = ArchitectureParameters(layers)
    arch.load_state_dict(state["alpha"])
    table = CostTable(**state["cost_table"])
    base_genotype = plugins.bases().get(state["base"]).base_genotype()
    ops = base_ops(base_genotype, layers)
    base_cost = state.get("base_cost", table.cost_of(ops) if ops is not None else None)  # older searches did not record it
    return FinishedSearch(
        directory=directory, base=state["base"], detector=state["detector"], space=space, skeleton=skeleton, layers=layers,
        arch=arch, table=table, config=_search_config(state, directory), detector_state=state["detector_state"],
        weight_image_ids=weight_ids, alpha_image_ids=alpha_ids, base_ops=ops, base_cost=base_cost,
    )


def _search_space(data: dict[str, Any], *, source: str) -> SearchSpace:
    """The space as the search saved it (``asdict``), of the registered space's class when the name is registered
    (a plugin's space may compute its candidates, as ``fna-mobilenetv3``'s stage styles)."""
    try:
        kind = type(plugins.search_spaces().get(data["name"]))
    except PluginError:
        kind = SearchSpace  # a space YAML file
    try:
        return kind(**data)
    except TypeError as error:
        raise WeightsError(f"{source}: the saved search space does not fit {kind.__name__} ({error})") from None


def _search_config(state: dict[str, Any], directory: Path) -> SearchConfig:
    """The search's config: in ``supernet.pth`` if it holds one, else in the final ``last.pth`` (read lazily: mmap)."""
    values = state.get("config")
    if values is None and (directory / "last.pth").is_file():
        try:
            values = torch.load(directory / "last.pth", map_location="cpu", weights_only=True, mmap=True).get("config")
        except Exception:  # an unreadable last.pth is reported below as a missing config
            values = None
    if not isinstance(values, dict):
        raise ConfigError(f"{directory}: the search's config is in neither supernet.pth nor last.pth (was last.pth deleted?)")
    # A field another netadapt version had and this one lacks is left out: the front reads only the input size, the
    # detector's options, the cost model's settings, the batch size, the optimizer and the seed.
    known = {field.name for field in dataclasses.fields(SearchConfig)}
    values = {name: value for name, value in values.items() if name in known}
    return section_config(SearchConfig, {"search": values}, "search", source=f"{directory} (search config)")


def resolve_targets(search: FinishedSearch, targets: Sequence[str] | None = None, points: int | None = None) -> list[tuple[str, float]]:
    """``(as given, value)`` per target, in the cost model's unit, each checked to be feasible, cheapest first.

    ``targets``: costs as ``search.target`` takes them (``250M``, ``20``) or relative to the base network's
    searched layers (``0.7x``). ``points`` (default :data:`DEFAULT_POINTS` when neither is given): that many
    targets evenly spaced above the cheapest network of the space up to the cost of the unconstrained derive
    (the argmax of α), which is the last: every target above it gives that same architecture, and the cheapest
    network itself (one op fits it: skips wherever they may stand) is left out.
    """
    if targets and points is not None:
        raise ConfigError("--targets and --points: give one of them")
    costs = [[layer[name] for name in names] for layer, names in zip(search.table.costs, search.arch.candidate_names, strict=True)]
    if points is None and not targets:
        points = DEFAULT_POINTS
    if points is not None:
        if points < 1:
            raise ConfigError(f"--points must be positive, got {points}")
        if points > MAX_POINTS:
            raise ConfigError(f"--points must be at most {MAX_POINTS} (each point is an evaluation of the super network), got {points}")
        low, _ = cost_range(costs)
        high = search.table.cost_of(search.arch.best_ops())
        values = [low + (high - low) * i / points for i in range(1, points)] + [high]  # the last exactly the argmax's cost
        resolved = [(format_cost(value, search.table.unit), value) for value in values]
    else:
        if len(targets) > MAX_POINTS:
            raise ConfigError(f"--targets: at most {MAX_POINTS} budgets (each is an evaluation of the super network), got {len(targets)}")
        resolved = []
        for given in targets:
            try:
                value = resolve_target(given, search.base_cost)
            except ConfigError as error:
                raise ConfigError(str(error).replace("search.target", "--targets", 1)) from None
            resolved.append((str(given), value))
    for given, value in resolved:
        check_target(value, costs, unit=search.table.unit, where=f"--targets {given}")
    return sorted(resolved, key=lambda item: item[1])


def plan_front(search: FinishedSearch, targets: list[tuple[str, float]]) -> list[FrontPoint]:
    """The constrained derive at every target (no network is run)."""
    planned = []
    for number, (given, value) in enumerate(targets, start=1):
        try:
            ops = choose_ops(search.arch, search.table, value)
        except ValueError:  # check_target let it through; a float sum rounded the other way
            raise ConfigError(f"--targets {given}: no network of the search space meets {format_cost(value, search.table.unit)}") from None
        planned.append(FrontPoint(f"point-{number}", given, value, ops, search.genotype(ops)))
    return planned

