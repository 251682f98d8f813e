"""Search spaces: which layers are searched, over which candidate ops, at which depths.

A search space is data. The built-in ``fna`` space (DESIGN §1.3) grows MobileNetV2's stages to
depths [1, 4, 4, 4, 4, 4, 1] and searches every layer of the five middle stages over
{k3, k5, k7} × {e3, e6}, plus ``skip`` where the block keeps its shape (not a stage's first
layer). The first and last stages stay as in the base. A YAML file defines another space::

    name: small
    depths: [1, 2, 3, 4, 3, 3, 1]
    candidates: [k3_e3, k3_e6, k5_e6]
    skip: true               # add `skip` to the candidates of shape-keeping layers
    searched_stages: [2, 3, 4, 5, 6]   # stage numbers, 1-based; default: all but the first and the last

Stages are numbered from 1 in a file, as in every message and table; the Python API's
``stage_index`` and ``layer_index`` count from 0 (``is_searched(0)`` asks about stage 1).
``netadapt spaces`` lists the registered spaces (docs/search-spaces.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from netadapt.contracts import optional
from netadapt.errors import ConfigError
from netadapt.genotype import SKIP, Genotype, Op, parse_op
from netadapt.hookspecs import hookimpl
from netadapt.yamlio import safe_load


# The fields of a search-space file (``netadapt config --section space``, docs/config.md).
FIELDS = {
    "name": "the space's name in reports and genotypes (their search_space); default: the file's name without .yaml",
    "depths": "layers per stage in the super network, one number (1..64) per stage of the base",
    "candidates": "the ops every searched layer chooses from (k3_e6, k5_e3, ...; write skip: true rather than listing skip)",
    "skip": "add skip to the candidates of every searched layer but a stage's first (which changes channels or stride)",
    "searched_stages": "the searched stages by number, 1-based (the first stage is 1); null: all but the first and the last",
}


@dataclass(frozen=True)
class SearchSpace:
    name: str
    depths: tuple[int, ...]
    candidates: tuple[str, ...]
    skip: bool = True
    searched_stages: tuple[int, ...] | None = None  # 1-based; None: all but the first and last
    extra: dict = field(default_factory=dict, compare=False)

    def is_searched(self, stage_index: int) -> bool:
        """``stage_index`` is 0-based."""
        if self.searched_stages is not None:
            return stage_index + 1 in self.searched_stages
        return 0 < stage_index < len(self.depths) - 1

    def layer_candidates(self, stage_index: int, layer_index: int) -> tuple[Op, ...]:
        """Candidate ops of one searched layer (0-based indices); ``skip`` never first in a stage."""
        ops = tuple(parse_op(name) for name in self.candidates)
        return ops + ((SKIP,) if self.skip and layer_index > 0 else ())

    def fingerprint(self) -> str:
        """A short hash of the space's definition (cache keys)."""
        data = {key: value for key, value in asdict(self).items() if key != "extra"}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]

    def check_against(self, base: Genotype, *, source: str) -> None:
        """The base genotype has one stage per entry of depths. Then, when the super network is built, the base must
        build every candidate (else one GenotypeError line) and each searched layer must be one module of its network
        (a layer given as several modules cannot be searched)."""
        if len(self.depths) != len(base.stages):
            raise ConfigError(f"{source}: space has {len(self.depths)} depths, base has {len(base.stages)} stages")


FNA_SPACE = SearchSpace(
    name="fna",
    depths=(1, 4, 4, 4, 4, 4, 1),
    candidates=("k3_e3", "k3_e6", "k5_e3", "k5_e6", "k7_e3", "k7_e6"),
)


def default_space_name(base_name: str) -> str:
    """The space a search of ``base_name`` uses when neither ``--space`` nor the config names one:
    the base network's ``default_search_space`` attribute (see :mod:`netadapt.bases`), else ``fna``."""
    from netadapt import plugins

    return optional(plugins.bases().get(base_name), "default_search_space", FNA_SPACE.name)


def load_search_space(source: str | Path) -> SearchSpace:
    """A registered space by name, or a space YAML file."""
    from netadapt import plugins

    path = Path(source)
    if path.suffix not in (".yaml", ".yml") and not path.is_file():
        return plugins.search_spaces().get(str(source))
    try:
        data = safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read search space: {error.strerror or error}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{path}: malformed YAML") from None
    return space_from_data(data, source=str(path))


def space_from_data(data: object, *, source: str) -> SearchSpace:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a search space is a mapping with depths and candidates")
    known = {"name", "depths", "candidates", "skip", "searched_stages"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown field '{unknown[0]}' (known: {', '.join(sorted(known))})")
    depths = data.get("depths")
    if not isinstance(depths, list) or not depths or not all(isinstance(d, int) and 1 <= d <= 64 for d in depths):
        raise ConfigError(f"{source}: field 'depths' must be a list of stage depths in 1..64, got {depths!r}")
    candidates = data.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise ConfigError(f"{source}: field 'candidates' must be a non-empty list of ops such as k3_e6")
    for position, name in enumerate(candidates, start=1):
        try:
            if parse_op(name).is_skip:
                raise ValueError("write `skip: true` instead of listing skip")
        except ValueError as error:
            raise ConfigError(f"{source}: candidates, op {position}: {error}") from None
    searched = data.get("searched_stages")
    if searched is not None and (not isinstance(searched, list) or not all(isinstance(s, int) and 1 <= s <= len(depths) for s in searched)):
        raise ConfigError(f"{source}: field 'searched_stages' must list 1-based stage numbers, got {searched!r}")
    skip = data.get("skip", True)
    if not isinstance(skip, bool):
        raise ConfigError(f"{source}: field 'skip' must be true or false")
    return SearchSpace(
        name=str(data.get("name", Path(source).stem)),
        depths=tuple(depths),
        candidates=tuple(candidates),
        skip=skip,
        searched_stages=tuple(searched) if searched is not None else None,
    )


@hookimpl
def register_search_spaces(register) -> None:
    register(FNA_SPACE.name, FNA_SPACE)
