"""The ``fna-mobilenetv3`` search space: FNA's search (DESIGN §1.3) on MobileNetV3-Large.

FNA searches every layer of MobileNetV2's middle stages over {k3, k5, k7} × {e3, e6} plus
``skip``, each stage grown to 4 layers. On MobileNetV3-Large the same candidates are searched
in stages 2-6 (depths 1, 4, 4, 4, 4, 4): stage 1 (16 → 16, one ``k3_e1`` block) stays fixed as
FNA keeps MobileNetV2's first stage; stage 6 (112 → 160, three blocks) is searched, because
MobileNetV3 has no one-block last stage as MobileNetV2's 160 → 320; 4 layers is FNA's depth and
at least every stage's base depth (2, 3, 4, 2, 3), so depth remapping (Eq. 1) only grows stages.

Each candidate keeps its stage's squeeze-excitation and activation from the base
(:class:`StageStyledSearchSpace`): stage 3 searches ``k5_e3_se`` and the like, stage 4
``k7_e6_hs``, stages 5 and 6 ``k3_e3_se_hs``. The search thus changes kernels, expansions and
depths, as FNA does, and leaves MobileNetV3's SE and Hardswish placement as the paper's
platform-aware search put it. The space holds no ``e4``/``e2.5``/``e2.3`` candidate, so unlike
MobileNetV2 in ``fna`` the base network itself is not a path of the super network; every
candidate still starts from the base's remapped weights (Section 2.1). A candidate wider than its
base layer (``e6`` where the base has ``e2.3``, ``e2.5``, ``e3`` or ``e4``) gets the base's channels
repeated cyclically, so it does not compute what the base layer did.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from netadapt.errors import ConfigError
from netadapt.genotype import Genotype, Op
from netadapt.search.space import FNA_SPACE, SearchSpace

NAME = "fna-mobilenetv3"
DEPTHS = (1, 4, 4, 4, 4, 4)
SEARCHED_STAGES = (2, 3, 4, 5, 6)


@dataclass(frozen=True)
class StageStyledSearchSpace(SearchSpace):
    """A search space whose candidates carry each stage's squeeze-excitation and activation.

    ``stage_styles[s]`` is ``(se, hswish)`` of stage ``s`` (0-based); the ``candidates`` are
    written without suffixes and get the stage's.
    """

    stage_styles: tuple[tuple[bool, bool], ...] = ()

    def layer_candidates(self, stage_index: int, layer_index: int) -> tuple[Op, ...]:
        se, hswish = self.stage_styles[stage_index]
        ops = super().layer_candidates(stage_index, layer_index)
        return tuple(op if op.is_skip else replace(op, se=se, hswish=hswish) for op in ops)

    def check_against(self, base: Genotype, *, source: str) -> None:
        """As every space (one stage per entry of depths, every candidate buildable, one module per searched layer),
        and one (squeeze-excitation, Hardswish) style per stage of the base: MobileNetV3-Large's."""
        super().check_against(base, source=source)
        if len(self.stage_styles) != len(base.stages):
            raise ConfigError(f"{source}: space has {len(self.stage_styles)} stage styles, base has {len(base.stages)} stages")


def stage_styles(genotype: Genotype) -> tuple[tuple[bool, bool], ...]:
    """``(se, hswish)`` of every stage, from its first op (MobileNetV3's stages are uniform in both)."""
    return tuple((stage.ops[0].se, stage.ops[0].hswish) for stage in genotype.stages)


def fna_mobilenetv3_space(base_genotype: Genotype) -> StageStyledSearchSpace:
    """FNA's candidates and ``skip`` on MobileNetV3-Large's stages 2-6 at depth 4 (module docstring)."""
    return StageStyledSearchSpace(
        name=NAME,
        depths=DEPTHS,
        candidates=FNA_SPACE.candidates,
        skip=True,
        searched_stages=SEARCHED_STAGES,
        stage_styles=stage_styles(base_genotype),
    )
